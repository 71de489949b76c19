/*
 * libFuzzer harness for the image decoders through the public entry point
 * evmap_image_load_memory (the decoder is chosen by content, so the PNG and
 * JPEG harnesses share this body and differ by their seed corpora). A decoded
 * image is checked for a sane shape and pixels in [0, 1], and small images go
 * through ImageNet preprocessing (resize and crop).
 */
#include "fuzz_common.h"

#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    evm_fuzz_image(data, size);
    return 0;
}
