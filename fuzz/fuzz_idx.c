/*
 * libFuzzer harness for IDX files (MNIST format, plain or gzip): the bytes go
 * through evmap_image_set_add (header checks, gunzip, size checks), the first
 * and last images are decoded, and the same bytes are read as a labels file.
 * The loaders take paths, so the input is served from a memory file.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    evm_fuzz_file(data, size, path, sizeof path);
    evmap_error err = {0};
    evmap_image_set *set = NULL;
    evmap_status st = evmap_image_set_create(&set, &err);
    if (st != EVMAP_OK)
        abort();
    /* As --max-memory would: a gzip bomb is refused before it is inflated. */
    evmap_image_set_limit_memory(set, (uint64_t)64 << 20);
    st = evmap_image_set_add(set, path, &err);
    evm_fuzz_check_error(st, &err);
    size_t count = evmap_image_set_count(set);
    if (st != EVMAP_OK && count != 0)
        abort(); /* a failed add leaves the set as it was */
    for (size_t i = 0; i < count && i < 2; i++) {
        size_t index = i == 0 ? 0 : count - 1;
        evmap_image *img = NULL;
        st = evmap_image_set_load(set, index, &img, &err);
        evm_fuzz_check_error(st, &err);
        if (st == EVMAP_OK && (!evmap_image_set_name(set, index) || img->channels != 1))
            abort();
        evmap_image_free(img);
    }
    evmap_image_set_free(set);

    uint8_t *labels = NULL;
    size_t n = 0;
    st = evmap_idx_load_labels(path, &labels, &n, &err);
    evm_fuzz_check_error(st, &err);
    if (st == EVMAP_OK && n && !labels)
        abort();
    evmap_idx_free_labels(labels);
    return 0;
}
