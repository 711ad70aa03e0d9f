# sdafs — one entry point: make, make check, make demo, make install.
#
# Build variants live in their own folders: build/ (optimised) and
# build/asan/ (AddressSanitizer + UndefinedBehaviorSanitizer, used by the
# tests).  `make check` and `make demo` first install any missing Debian
# packages (scripts/deps.sh), so both work on a fresh machine.

SHELL     := /bin/bash
CC        ?= cc
PKGS      := fuse3 libcjson libpcre2-8
PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build
SAN       ?=

WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CPPFLAGS  += -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=35 -I$(BUILD)/gen

# The layers of the tree, bottom first: each folder and the folders its files
# may include from.  Includes point only downward: a folder's files are
# compiled with only these include paths, so an upward include does not
# build, and `make check-layers` (part of make check) checks every file of
# every folder, headers included, and that no include cycle exists.
comma     := ,
LAYERS    := convert/base= \
             convert/source=convert/base \
             convert/recipe=convert/base \
             convert/plan=convert/base,convert/source,convert/recipe \
             cache=convert/base \
             gpu=convert/base,convert/recipe \
             convert/view=convert/base,convert/source,convert/recipe,convert/plan,cache,gpu \
             dist=convert/base,convert/source,convert/recipe,convert/plan,convert/view,cache,gpu \
             fs=convert/base,convert/source,convert/recipe,convert/plan,convert/view,cache,gpu,dist
layer_dir  = $(firstword $(subst =, ,$(1)))
layer_uses = $(subst $(comma), ,$(word 2,$(subst =, ,$(1))))
$(foreach l,$(LAYERS),$(eval INC_$(call layer_dir,$(l)) := \
	$(addprefix -I,$(call layer_dir,$(l)) $(call layer_uses,$(l)))))
# tests and benchmarks see every folder
ALL_INC   := $(foreach l,$(LAYERS),-I$(call layer_dir,$(l)))
inc_of     = $(or $(INC_$(patsubst %/,%,$(dir $(1)))),$(ALL_INC))
OPT       ?= -O2 -g
# override: flags a user puts in CFLAGS are added to ours, never replace them
override CFLAGS  += $(OPT) -std=c11 $(WARN) -pthread -fno-strict-aliasing
ifeq ($(SAN),1)
override CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
override LDFLAGS += -fsanitize=address,undefined
# the test build: the GPU backend's table of CUDA calls can be swapped for
# a fake device (gpu/gpu_api.h, tests/unit/gpu_fake.c)
CPPFLAGS  += -DSDAFS_GPU_TEST_HOOKS
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS    += $(PKG_LIBS) -lpthread -lm

# gpu/: the backend is plain C in every build; only the kernels and the
# table of CUDA calls need nvcc (cuda_api.cu, else gpu_none.c)
LIB_SRC   := $(wildcard convert/*/*.c) $(wildcard cache/*.c) \
             $(filter-out gpu/gpu_none.c,$(wildcard gpu/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
FS_SRC    := $(filter-out fs/mount_helper.c,$(wildcard fs/*.c)) $(wildcard dist/*.c)
FS_OBJ    := $(FS_SRC:%.c=$(BUILD)/obj/%.o)
# MPI (-o mpi) where OpenMPI's compiler wrapper is installed
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
ifneq ($(MPI_LIBS),)
$(BUILD)/obj/dist/%.o: CPPFLAGS += -DHAVE_MPI $(MPI_CFLAGS)
$(BUILD)/sdafs: LDLIBS += $(MPI_LIBS)
endif
# The CUDA kernels and calls (gpu/cuda_api.cu) where nvcc is installed,
# else a stub that says so; `make NVCC=` builds without them.  CUDA's
# runtime is linked statically, so a binary built with it still runs (on
# the CPU) without a driver or GPU.
NVCC      ?= $(wildcard /usr/local/cuda/bin/nvcc)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVCC_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
# no FMA contraction, no flush-to-zero: the kernels must round as the CPU does
NVCC_FLAGS = -O2 -std=c++17 --fmad=false -ftz=false -prec-div=true -prec-sqrt=true \
             $(NVCC_ARCH) -Xcompiler -Wall,-Wextra,-Werror,-fno-strict-aliasing
ifneq ($(NVCC),)
GPU_OBJ   := $(BUILD)/obj/gpu/cuda_api.o
CPPFLAGS  += -DHAVE_CUDA
LDLIBS    += -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lstdc++
# the GPU stress driver (tests/gpu/): CUDA's own calls provoke the faults
GPU_STRESS := $(BUILD)/tests/gpu_stress
else
GPU_OBJ   := $(BUILD)/obj/gpu/gpu_none.o
endif
LIB_OBJ   += $(GPU_OBJ)
ADAPTERS  := $(wildcard convert/plan/adapters/*.json)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# the independent reference checks itself against hand-computed values
REF_TESTS := tests/ref/test_ref_selfcheck.py tests/ref/test_families.py tests/ref/test_dcp_selfcheck.py \
             tests/ref/test_peft_selfcheck.py

.PHONY: all deps check check-layers unit integration demo install uninstall clean asan \
        fuzz fuzz-check fuzz-build gpu-tests

all: $(BUILD)/sdafs $(BUILD)/mount.sdafs

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(call inc_of,$<) $(PKG_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

check-layers:
	/usr/bin/python3 scripts/check_layers.py $(LAYERS)

# Built-in adapter tables are JSON files compiled in as strings, so the
# built-ins and -o adapter_file= go through the same loader.
$(BUILD)/gen/builtin_adapters.h: $(ADAPTERS) scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh $(ADAPTERS) > $@

$(BUILD)/obj/convert/plan/adapter.o: $(BUILD)/gen/builtin_adapters.h

$(BUILD)/obj/gpu/%.o: gpu/%.cu gpu/gpu.h gpu/gpu_api.h gpu/kernel_math.h convert/recipe/quant.h \
		convert/base/dtype_scalar.h convert/base/dtype.h
	@mkdir -p $(dir $@)
	$(NVCC) $(CPPFLAGS) $(INC_gpu) $(NVCC_FLAGS) -c -o $@ $<

$(BUILD)/libsdafs.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/sdafs: $(FS_OBJ) $(BUILD)/libsdafs.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/mount.sdafs: $(BUILD)/obj/fs/mount_helper.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^

TEST_LIB  := tests/unit/testlib.c tests/unit/adapter_fixture.c tests/unit/gpu_fake.c
$(BUILD)/tests/%: tests/unit/%.c $(TEST_LIB) $(TEST_LIB:.c=.h) $(BUILD)/libsdafs.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_INC) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(TEST_LIB) \
		$(BUILD)/libsdafs.a $(LDLIBS) -lcmocka

# The GPU stress driver: plain C, with CUDA's header for the faults it
# provokes itself, and one kernel of its own (a deliberate illegal address).
$(BUILD)/obj/tests/gpu/poison.o: tests/gpu/poison.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c -o $@ $<

$(BUILD)/tests/gpu_stress: tests/gpu/stress.c $(BUILD)/obj/tests/gpu/poison.o $(BUILD)/libsdafs.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_INC) -I$(CUDA_HOME)/include $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< \
		$(BUILD)/obj/tests/gpu/poison.o $(BUILD)/libsdafs.a $(LDLIBS)

asan:
	$(MAKE) BUILD=build/asan SAN=1 OPT="-O1 -g" all $(UNIT_BIN:build/%=build/asan/%)

# Tests of a real GPU run from the optimised build (CUDA does not start
# under AddressSanitizer's memory layout); the sanitizer build's test_gpu
# runs the same comparisons against the fake device.
GPU_REAL  := build/tests/test_gpu $(GPU_STRESS)

gpu-tests: all
	$(MAKE) $(GPU_REAL)

unit: deps asan gpu-tests
	CMOCKA_MESSAGE_OUTPUT=TAP prove -v --exec '' $(UNIT_BIN:build/%=build/asan/%) $(GPU_REAL)

integration: deps all asan
	SDAFS_BUILD=$(CURDIR)/build/asan SDAFS_FAST_BUILD=$(CURDIR)/build prove -v tests/integration/*.t

check: deps
	$(MAKE) check-layers
	$(MAKE) all
	$(MAKE) asan
	$(MAKE) gpu-tests
	CMOCKA_MESSAGE_OUTPUT=TAP prove --exec '' $(UNIT_BIN:build/%=build/asan/%) $(GPU_REAL)
	$(MAKE) fuzz-check
	prove --exec /usr/bin/python3 $(REF_TESTS)
	SDAFS_BUILD=$(CURDIR)/build/asan SDAFS_FAST_BUILD=$(CURDIR)/build prove tests/integration/*.t

# libFuzzer targets (tests/fuzz/): the library is compiled again with
# clang and the fuzzer's coverage instrumentation into build/fuzz/obj.
# `make fuzz` fuzzes each target for FUZZ_SECONDS; `make fuzz-check` replays
# the seed corpora and regressions plus a few thousand new inputs.
FUZZ_SECONDS ?= 60
FUZZ_DIR     := build/fuzz
FUZZ_CC      ?= clang-14
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer -std=c11 $(WARN) -pthread \
                -fno-strict-aliasing $(FUZZ_SAN)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/gpu/gpu_none.o
FUZZ_BIN     := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz-build: $(FUZZ_BIN)

$(FUZZ_DIR)/obj/%.o: %.c $(BUILD)/gen/builtin_adapters.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(call inc_of,$<) $(PKG_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
		-MMD -MP -c -o $@ $<

$(FUZZ_DIR)/libsdafs.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BIN): $(FUZZ_DIR)/%: $(FUZZ_DIR)/obj/tests/fuzz/%.o $(FUZZ_DIR)/libsdafs.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lpthread -lm

fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

fuzz-check: deps
	scripts/fuzz.sh --check

demo: deps all
	scripts/demo.sh

# make bench [BENCH_GB=0.5]: ratios to raw reads and to a FUSE passthrough
# floor, then the per-operation section (bench/README.md); results in
# $(BUILD)/bench/results.json.  make bench-ops runs only the latter.
.PHONY: bench bench-ops bench-convert
bench: all $(BUILD)/bench/passthrough $(BUILD)/bench/ops
	/usr/bin/python3 bench/run.py --build $(BUILD)

# sdafs convert against cp -r and the Python stand-in, alone (the last section of make bench)
bench-convert: all
	/usr/bin/python3 bench/run.py --build $(BUILD) --only convert

bench-ops: $(BUILD)/bench/ops
	$(BUILD)/bench/ops --json $(BUILD)/bench/ops.json

# per-operation throughput of the recipe backends, on the library itself
$(BUILD)/bench/ops: bench/ops.c $(BUILD)/libsdafs.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_INC) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsdafs.a $(LDLIBS)

$(BUILD)/bench/%: bench/%.c fs/bdi.c fs/bdi.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_INC) $(PKG_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< fs/bdi.c $(LDLIBS)

# The example adapter tables go where -o adapter=NAME finds them: relative
# to the installed binary, PREFIX/share/sdafs/adapters (fs/datadir.c).
EXAMPLE_ADAPTERS := $(wildcard examples/adapters/*.json)
ADAPTER_DIR       = $(DESTDIR)$(PREFIX)/share/sdafs/adapters

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(ADAPTER_DIR)
	install -m 755 $(BUILD)/sdafs $(DESTDIR)$(PREFIX)/bin/sdafs
	install -m 755 $(BUILD)/mount.sdafs $(DESTDIR)$(PREFIX)/sbin/mount.sdafs
	install -m 644 docs/sdafs.8 $(DESTDIR)$(PREFIX)/share/man/man8/sdafs.8
	install -m 644 $(EXAMPLE_ADAPTERS) $(ADAPTER_DIR)/
	@if [ -z "$(DESTDIR)" ] && [ "$(PREFIX)" != "/" ] && [ -d /sbin ] && [ -w /sbin ]; then \
		ln -sf $(PREFIX)/sbin/mount.sdafs /sbin/mount.sdafs; \
		echo "linked /sbin/mount.sdafs -> $(PREFIX)/sbin/mount.sdafs (mount -t sdafs looks in /sbin)"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/sdafs $(DESTDIR)$(PREFIX)/sbin/mount.sdafs \
	      $(DESTDIR)$(PREFIX)/share/man/man8/sdafs.8 \
	      $(addprefix $(ADAPTER_DIR)/,$(notdir $(EXAMPLE_ADAPTERS)))
	-rmdir $(ADAPTER_DIR) $(DESTDIR)$(PREFIX)/share/sdafs 2>/dev/null
	@# the link install made, and only that one (not another sdafs's, not under DESTDIR)
	@if [ -z "$(DESTDIR)" ] && [ "$$(readlink /sbin/mount.sdafs)" = "$(PREFIX)/sbin/mount.sdafs" ]; then \
		rm -f /sbin/mount.sdafs; fi

# Helpers a user can run, with the Python that has numpy whatever PATH says:
#   make checkpoint OUT=DIR [GEN_ARGS="--family qwen3_moe --shards 3"]
#   make check-view VIEW=MOUNTPOINT SRC=DIR [CHECK_ARGS="--ep-rank 1 --ep-size 4"]
PYTHON ?= /usr/bin/python3
.PHONY: checkpoint check-view
checkpoint:
	@[ -n "$(OUT)" ] || { echo "usage: make checkpoint OUT=DIR [GEN_ARGS='--family F ...']" >&2; exit 2; }
	$(PYTHON) tests/fixtures/gen_checkpoint.py $(OUT) $(GEN_ARGS)

check-view:
	@[ -n "$(VIEW)" ] && [ -n "$(SRC)" ] || \
		{ echo "usage: make check-view VIEW=MOUNTPOINT SRC=DIR [CHECK_ARGS=...]" >&2; exit 2; }
	$(PYTHON) tests/ref/check_view.py $(VIEW) $(SRC) $(CHECK_ARGS)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
