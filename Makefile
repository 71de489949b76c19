# evmap build. `make` builds build/libevmap.a, build/libevmap.so and build/evmap.
# `make test` runs every test (the suite, the suite again under AddressSanitizer
# + UndefinedBehaviorSanitizer, and a short run of every fuzz harness),
# `make demo` the default job, `make asan` the full suite under the sanitizers.

CC ?= cc
BUILD ?= build
OPT ?= -O3
# gcc warns about snprintf truncation that error messages accept; clang lacks the flag.
NO_TRUNC_WARN := $(shell $(CC) -Werror -Wno-format-truncation -E -x c /dev/null >/dev/null 2>&1 && echo -Wno-format-truncation)
CFLAGS_BASE := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
	-Wno-missing-field-initializers $(NO_TRUNC_WARN) -fPIC -Iinclude -Isrc -I$(BUILD)/gen
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := $(CFLAGS_BASE) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS := -lopenblas -lprotobuf-c -lpng -ljpeg -lz -lm -lpthread
PYTHON := /usr/bin/python3

GEN_C := $(BUILD)/gen/onnx/onnx.pb-c.c
GEN_H := $(BUILD)/gen/onnx/onnx.pb-c.h
# The library's layers, one folder each (README's layout table); src/cli is
# the command, built on the library.
LIB_LAYERS := base engine ops io samplers render methods evaluate
LIB_SRC := $(sort $(foreach d,$(LIB_LAYERS),$(wildcard src/$(d)/*.c)))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/onnx/onnx.pb-c.o
CLI_SRC := $(sort $(wildcard src/cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/unit/*.c))
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test demo asan clean format check-format fuzz bench programs suite install uninstall
NPROC := $(shell nproc 2>/dev/null || echo 2)

all: $(BUILD)/libevmap.a $(BUILD)/libevmap.so $(BUILD)/evmap

deps:
	@sh scripts/install-deps

$(GEN_C) $(GEN_H) &: /usr/include/onnx/onnx.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -I/usr/include onnx/onnx.proto

$(BUILD)/gen/onnx/onnx.pb-c.o: $(GEN_C)
	$(CC) $(filter-out -Werror,$(ALL_CFLAGS)) -w -c $< -o $@

$(BUILD)/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libevmap.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libevmap.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/evmap: $(CLI_OBJ) $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(LIB_OBJ) $(LDFLAGS) $(LDLIBS)

# Test programs: unit tests, the conformance runner and test tools.
define test_program
$$(BUILD)/tests/%: tests/$(1)/%.c $$(LIB_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) -o $$@ $$< $$(LIB_OBJ) $$(LDFLAGS) $$(LDLIBS)
endef
$(foreach dir,unit conformance tools,$(eval $(call test_program,$(dir))))

# Benchmark programs (bench/*_bench.c) use the CLI's OpenBLAS tuning.
$(BUILD)/bench/%_bench: bench/%_bench.c $(LIB_OBJ) $(BUILD)/src/cli/blas_env.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJ) $(BUILD)/src/cli/blas_env.o $(LDFLAGS) $(LDLIBS)

bench: deps all $(BUILD)/bench/forward_bench $(BUILD)/bench/gradient_bench

# Everything the suite runs, and the suite itself, for the build in $(BUILD).
TOOL_BIN := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/tools/*.c)))
programs: all $(TEST_BIN) $(BUILD)/tests/conformance $(TOOL_BIN)

suite: programs
	@BUILD=$(BUILD) PYTHON=$(PYTHON) sh tests/run-all

# The sanitized build: clang, AddressSanitizer + UBSan, any report fatal.
ASAN_VARS := BUILD=build-asan CC=clang OPT=-O1 \
	EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	LDFLAGS="-fsanitize=address,undefined"

# `make test` (CI): the suite; the suite under the sanitizers, with the long
# suites at reduced sizes (EVMAP_QUICK=1: fewer images and mutants, same
# checks); every fuzz harness for FUZZ_SMOKE_SECONDS on its corpus.
# TEST_SANITIZERS=0 runs the first part only.
TEST_SANITIZERS ?= 1
FUZZ_SMOKE_SECONDS ?= 60
test: deps
	@$(MAKE) --no-print-directory -j$(NPROC) programs
	@$(MAKE) --no-print-directory suite
ifneq ($(TEST_SANITIZERS),0)
	@echo "== the suite under AddressSanitizer + UndefinedBehaviorSanitizer (EVMAP_QUICK=1)"
	@$(MAKE) --no-print-directory -j$(NPROC) $(ASAN_VARS) programs
	@EVMAP_QUICK=1 $(MAKE) --no-print-directory $(ASAN_VARS) suite
	@echo "== every fuzz harness for $(FUZZ_SMOKE_SECONDS) s ($(NPROC) at a time)"
	@$(MAKE) --no-print-directory fuzz-build fuzz-corpus
	@$(MAKE) --no-print-directory -j$(NPROC) FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) fuzz-runs
	@echo "make test: all parts passed (suite, sanitized suite, fuzz smoke runs)"
endif

demo: deps all
	@sh scripts/demo

asan: deps
	@$(MAKE) --no-print-directory -j$(NPROC) $(ASAN_VARS) programs
	@$(MAKE) --no-print-directory $(ASAN_VARS) suite

# `make install` (PREFIX=/usr/local, DESTDIR honoured): the CLI, the library,
# its header and pkg-config file, and the Python package where Debian's
# /usr/bin/python3 imports it. `make uninstall` removes exactly those files.
PREFIX ?= /usr/local
INSTALL_PYTHON ?= /usr/bin/python3
PYTHONDIR ?= $(shell $(INSTALL_PYTHON) -c 'import sys; print("$(PREFIX)/lib/python3/dist-packages" if "$(PREFIX)" == "/usr" else "$(PREFIX)/lib/python%d.%d/dist-packages" % sys.version_info[:2])')
PY_FILES := $(notdir $(wildcard python/evmap/*.py))
INSTALLED := $(PREFIX)/bin/evmap $(PREFIX)/lib/libevmap.so $(PREFIX)/lib/libevmap.a \
	$(PREFIX)/include/evmap.h $(PREFIX)/lib/pkgconfig/evmap.pc \
	$(addprefix $(PYTHONDIR)/evmap/,$(PY_FILES) _installed.py)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
		$(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PYTHONDIR)/evmap
	install -m 755 $(BUILD)/evmap $(DESTDIR)$(PREFIX)/bin/evmap
	install -m 644 $(BUILD)/libevmap.so $(BUILD)/libevmap.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/evmap.h $(DESTDIR)$(PREFIX)/include/evmap.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBS@|$(LDLIBS)|' scripts/evmap.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/evmap.pc
	install -m 644 $(addprefix python/evmap/,$(PY_FILES)) $(DESTDIR)$(PYTHONDIR)/evmap/
	printf '"""Written by make install."""\nLIBRARY = "%s"\n' "$(PREFIX)/lib/libevmap.so" \
		> $(DESTDIR)$(PYTHONDIR)/evmap/_installed.py

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rm -rf $(DESTDIR)$(PYTHONDIR)/evmap/__pycache__
	-rmdir $(DESTDIR)$(PYTHONDIR)/evmap 2>/dev/null

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

# ------------------------------------------------------------------ fuzzing
# `make fuzz` builds the libFuzzer harnesses fuzz/fuzz_*.c with clang
# (-fsanitize=fuzzer,address,undefined) against a sanitized library in
# build-fuzz/, makes the seed corpora (fuzz/make_corpus.sh) when missing and
# runs each harness for FUZZ_SECONDS (default 60) on its corpus plus its
# kept regression inputs (tests/regressions/<harness>/) through fuzz/run.sh.
# New corpus entries stay in build-fuzz/corpus/, crashes go to
# build-fuzz/artifacts/<harness>/, logs to build-fuzz/logs/<harness>.log.
# FUZZ_HARNESSES picks some (e.g. FUZZ_HARNESSES=png); FUZZ_FLAGS adds flags;
# `make -j2 fuzz` runs two harnesses at a time.
FUZZ_BUILD := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_HARNESSES ?= onnx png jpeg idx sampler
FUZZ_FLAGS ?=
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_BINS := $(FUZZ_HARNESSES:%=$(FUZZ_BUILD)/fuzz/fuzz_%)

.PHONY: fuzz-build fuzz-corpus fuzz-runs

fuzz-build:
	@$(MAKE) --no-print-directory -j$(NPROC) BUILD=$(FUZZ_BUILD) CC=clang OPT=-O1 \
		EXTRA_CFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" $(FUZZ_BUILD)/libevmap.a
	@$(MAKE) --no-print-directory CC=clang $(FUZZ_BINS)

$(FUZZ_BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h fuzz/fuzz_image.h $(FUZZ_BUILD)/libevmap.a
	@mkdir -p $(dir $@)
	clang $(CFLAGS_BASE:-I$(BUILD)/gen=-I$(FUZZ_BUILD)/gen) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer \
		-o $@ $< $(FUZZ_BUILD)/libevmap.a $(LDLIBS)

fuzz-corpus: all
	@[ -d $(FUZZ_BUILD)/corpus ] || sh fuzz/make_corpus.sh $(FUZZ_BUILD)/corpus

# One harness's run (fuzz/run.sh): corpus first, then the kept inputs.
fuzz-run-%:
	@sh fuzz/run.sh $* $(FUZZ_SECONDS) $(FUZZ_FLAGS)

fuzz-runs: $(FUZZ_HARNESSES:%=fuzz-run-%)

fuzz: fuzz-build fuzz-corpus
	@$(MAKE) --no-print-directory fuzz-runs
