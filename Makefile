# evmap build. `make` builds build/libevmap.a, build/libevmap.so and build/evmap.
# `make test` runs every test, `make demo` the default job, `make asan` the
# suite under AddressSanitizer + UndefinedBehaviorSanitizer.

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
LIB_SRC := $(sort $(wildcard src/*.c src/ops/*.c src/methods/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/onnx/onnx.pb-c.o
CLI_SRC := $(sort $(wildcard src/cli/*.c))
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/unit/*.c))
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test demo asan clean format check-format fuzz bench

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

$(BUILD)/bench/forward_bench: bench/forward_bench.c $(LIB_OBJ) $(BUILD)/src/cli/blas_env.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB_OBJ) $(BUILD)/src/cli/blas_env.o $(LDFLAGS) $(LDLIBS)

bench: deps all $(BUILD)/bench/forward_bench

test: deps all $(TEST_BIN) $(BUILD)/tests/conformance $(BUILD)/tests/run_model
	@BUILD=$(BUILD) PYTHON=$(PYTHON) sh tests/run-all

demo: deps all
	@sh scripts/demo

asan:
	$(MAKE) BUILD=build-asan CC=clang OPT=-O1 \
		EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" test

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
