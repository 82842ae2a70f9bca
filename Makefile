# cnnd build.  `make test` installs what the tests need, builds and runs them.
# Targets: all, run, test (= deps + check), check (unit, server-unit, itest, conformance-data, fuzz-replay),
# san (ASan+UBSan, then TSan), conformance (cnnd vs ONNX Runtime: torchvision's models through
# /v2, and ONNX export; not in check), bench, bench-server, bench-train, model, clean, format, deps,
# demo-data (Fashion-MNIST into the data root), readme-test, test-browser, bench-saliency,
# fuzz, fuzz-replay (in check), soak, faults (docs/fuzzing.md).
comma       := ,
BUILD       := build$(if $(SAN),-$(subst $(comma),-,$(SAN)))
OPT         ?= $(if $(SAN),-O1 -g -fno-omit-frame-pointer,-O2 -g)
WARN        := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2
PKGS        := openblas libpng libjpeg zlib libprotobuf-c
PKG_CFLAGS   = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS     = $(shell pkg-config --libs $(PKGS)) -lm
ALL_CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -pthread -MMD -MP $(WARN) $(OPT) $(CFLAGS)
ALL_LDFLAGS := -pthread $(LDFLAGS)
ifneq ($(SAN),)
ALL_CFLAGS  += -fsanitize=$(SAN) -fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=$(SAN)
endif

SERVER_PKGS := libmicrohttpd jansson inih
SERVER_CFLAGS = $(shell pkg-config --cflags $(SERVER_PKGS))
SERVER_LIBS  = $(shell pkg-config --libs $(SERVER_PKGS))

CORE_SRC    := $(wildcard core/*.c)
# ONNX: C generated at build time by protoc-c from the onnx.proto Debian's libonnx-dev installs.
ONNX_PROTO  ?= /usr/include/onnx/onnx.proto
GEN         := $(BUILD)/gen
ONNX_PB_C   := $(GEN)/onnx.pb-c.c
ONNX_PB_H   := $(GEN)/onnx.pb-c.h
ONNX_PB_OBJ := $(GEN)/onnx.pb-c.o
SERVER_SRC  := $(filter-out server/main.c,$(wildcard server/*.c))
SERVER_OBJ  := $(SERVER_SRC:%.c=$(BUILD)/%.o)
SRV_TEST_SRC := $(wildcard tests/server/*.c)
SRV_TEST_OBJ := $(SRV_TEST_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC    := $(wildcard core/tool/*.c)
UNIT_SRC    := $(filter-out $(if $(SAN),tests/unit/alloc_counter.c),$(wildcard tests/unit/*.c))
CORE_OBJ    := $(CORE_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ    := $(TOOL_SRC:%.c=$(BUILD)/%.o)
UNIT_OBJ    := $(UNIT_SRC:%.c=$(BUILD)/%.o)

LIBCNN      := $(BUILD)/libcnn.a
LIBCNND     := $(BUILD)/libcnnd.a
CNND        := $(BUILD)/cnnd
CHECK_SERVER := $(BUILD)/check_server
CNN         := $(BUILD)/cnn
CHECK_UNIT  := $(BUILD)/check_unit

.PHONY: all test unit server-unit itest conformance-data check conformance-export san bench bench-server bench-train model run clean format deps
all: $(CNN) $(CNND)

deps:
	@bash .ci/deps.sh build

$(BUILD)/%.o: %.c | $(ONNX_PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -Icore -I$(GEN) -c $< -o $@

$(ONNX_PB_C) $(ONNX_PB_H) &: $(ONNX_PROTO)
	@mkdir -p $(GEN)
	protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$(GEN) $(notdir $(ONNX_PROTO))

$(ONNX_PB_OBJ): $(ONNX_PB_C) $(ONNX_PB_H)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -I$(GEN) -c $< -o $@

$(LIBCNN): $(CORE_OBJ) $(ONNX_PB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(CNN): $(TOOL_OBJ) $(LIBCNN)
	$(CC) $(ALL_LDFLAGS) -o $@ $(TOOL_OBJ) $(LIBCNN) $(PKG_LIBS)

$(BUILD)/server/%.o: ALL_CFLAGS += $(SERVER_CFLAGS) -Iserver
# The dashboard (server/www/) compiled in: one byte array per file (od: no xxd needed).
WWW_SRC     := $(sort $(wildcard server/www/*))
WWW_C       := $(GEN)/www_files.c
WWW_OBJ     := $(GEN)/www_files.o
$(WWW_C): $(WWW_SRC) Makefile
	@mkdir -p $(GEN)
	@{ echo '#include "www.h"'; i=0; for f in $(WWW_SRC); do \
	    echo "static const unsigned char f$$i[] = {"; od -An -v -tx1 "$$f" | \
	    sed -E 's/ ([0-9a-f]{2})/0x\1,/g'; echo "0};"; i=$$((i + 1)); done; \
	  echo 'const struct www_file www_files[] = {'; i=0; for f in $(WWW_SRC); do \
	    echo "{\"$$(basename "$$f")\", f$$i, sizeof f$$i - 1},"; i=$$((i + 1)); done; \
	  echo '{0, 0, 0}};'; } > $@
$(WWW_OBJ): $(WWW_C)
	$(CC) $(ALL_CFLAGS) -Iserver -c $< -o $@

$(LIBCNND): $(SERVER_OBJ) $(WWW_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(CNND): $(BUILD)/server/main.o $(LIBCNND) $(LIBCNN)
	$(CC) $(ALL_LDFLAGS) -o $@ $(BUILD)/server/main.o $(LIBCNND) $(LIBCNN) $(SERVER_LIBS) $(PKG_LIBS)

$(BUILD)/tests/server/%.o: ALL_CFLAGS += $(SERVER_CFLAGS) -Iserver $(shell pkg-config --cflags check) -Wno-missing-prototypes
$(CHECK_SERVER): $(SRV_TEST_OBJ) $(LIBCNND) $(LIBCNN)
	$(CC) $(ALL_LDFLAGS) -o $@ $(SRV_TEST_OBJ) $(LIBCNND) $(LIBCNN) $(SERVER_LIBS) $(PKG_LIBS) $(shell pkg-config --libs check)

$(BUILD)/tests/unit/%.o: ALL_CFLAGS += $(shell pkg-config --cflags check) -Wno-missing-prototypes
$(CHECK_UNIT): $(UNIT_OBJ) $(LIBCNN)
	$(CC) $(ALL_LDFLAGS) -o $@ $(UNIT_OBJ) $(LIBCNN) $(PKG_LIBS) $(shell pkg-config --libs check)

# Unit tests; CNN_TEST_SUITE=name runs one suite.  OPENBLAS_NUM_THREADS=1 keeps BLAS
# from spinning extra threads under the sanitizers; tests that need threads set them.
unit: $(CHECK_UNIT) $(CNN)
	OPENBLAS_NUM_THREADS=1 CNN_TOOL=$(CNN) ./$(CHECK_UNIT)

# Server unit suites (batcher, registry, config, http).
server-unit: $(CHECK_SERVER)
	OPENBLAS_NUM_THREADS=1 CNN_SERVER_ALL=1 ./$(CHECK_SERVER)

# Integration tests: a real cnnd on an ephemeral loopback port, driven by curl.
itest: $(CNN) $(CNND)
	CNN=$(CNN) CNND=$(CNND) bash tests/integration/run.sh

# ONNX backend conformance over Debian's libonnx-testdata: every test that runs must pass.
ONNX_TESTDATA ?= /usr/share/libonnx-testdata/data
conformance-data: $(CNN)
	@for d in node pytorch-converted pytorch-operator simple; do \
	    printf '%-18s ' "$$d:"; \
	    ./$(CNN) onnx-test --quiet $(ONNX_TESTDATA)/$$d > $(BUILD)/onnx-$$d.txt; rc=$$?; \
	    grep -E '^(FAIL|run)' $(BUILD)/onnx-$$d.txt; test $$rc = 0 || exit 1; \
	done

check: unit server-unit itest conformance-data fuzz-replay

# Peer conformance (not in `make check`: needs ../shared/peers/setup.sh and minutes): each
# prerequisite compares cnnd with ONNX Runtime on its own set of models.
.PHONY: conformance conformance-torchvision conformance-photo
conformance: conformance-torchvision conformance-photo
# torchvision's AlexNet, VGG-11, GoogLeNet, ResNet-18/50, DenseNet-121, SqueezeNet 1.1 and
# MobileNetV2 (seeded random weights) served by cnnd equal ONNX Runtime (MODELS=a,b picks).
conformance-torchvision: $(CNN) $(CNND)
	CNN=$(CNN) CNND=$(CNND) bash tests/conformance/torchvision.sh
# End to end: a 320x240 JPEG through /v1/models/resnet18/classify (ImageNet mean/std, shorter
# side 256, crop 224 from config.ini, labels) equals a torchvision + ONNX Runtime reference.
conformance-photo: $(CNN) $(CNND)
	CNN=$(CNN) CNND=$(CNND) bash tests/conformance/photo.sh

# ONNX export next to ONNX Runtime (needs ../shared/peers/setup.sh): every shipped
# architecture, the bundled model and the unit-test networks exported by `cnn convert`, run by
# ORT and by cnnd's session on the same inputs; the max abs difference per model and
# onnx.checker's verdict.  Not part of `make test` (it needs the peers).
SESSION_RAW := $(BUILD)/session_raw
$(BUILD)/tests/conformance/%.o: ALL_CFLAGS += $(shell pkg-config --cflags check) -Itests/unit
$(SESSION_RAW): $(BUILD)/tests/conformance/session_raw.o $(BUILD)/tests/unit/test_nets.o \
                $(BUILD)/tests/unit/test_onnx_nets.o $(BUILD)/tests/unit/test_kinds_nets.o \
                $(BUILD)/tests/unit/test_train.o $(LIBCNN)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) $(shell pkg-config --libs check)
conformance-export: $(CNN) $(SESSION_RAW)
	CNN=$(CNN) SESSION_RAW=$(SESSION_RAW) bash tests/conformance/export_ort.sh
conformance: conformance-export

test:
	@bash .ci/deps.sh test
	$(MAKE) check

# The container image (Dockerfile) built and run for real with podman through
# ../shared/tools/docker-smoke, then checked by tests/docker/smoke.sh (size, USER,
# HEALTHCHECK, a classification, podman stop with 32 requests in flight).  Needs root.
.PHONY: docker
docker:
	bash tests/docker/smoke.sh

# Installs what is missing, builds, and serves the bundled model repository on port 8080.
run:
	@bash .ci/deps.sh run
	$(MAKE) all
	./$(CNND) --config config/cnnd.conf

# Sanitizer builds of the same tests: ASan+UBSan (with the ONNX conformance runs), then TSan
# (thread tests run there too).
san:
	@bash .ci/deps.sh test
	$(MAKE) SAN=address,undefined unit server-unit conformance-data fuzz-replay
	CNN_TEST_SUITE=session,session_team,durable,workers $(MAKE) SAN=thread unit
	CNN_TEST_SUITE=train,train_workflow $(MAKE) SAN=thread unit
	$(MAKE) SAN=thread server-unit

bench: $(CNN)
	@bash .ci/deps.sh bench
	bash bench/run.sh $(CNN)

# The libcurl load generator the server benchmark drives cnnd with.
LOADGEN     := $(BUILD)/loadgen
$(LOADGEN): clients/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags libcurl) $< -o $@ $(ALL_LDFLAGS) $(shell pkg-config --libs libcurl)

bench-server: $(CNN) $(CNND) $(LOADGEN)
	@bash .ci/deps.sh bench
	CNN=$(CNN) CNND=$(CNND) LOADGEN=$(LOADGEN) bash bench/server.sh

# Training benchmark: cnn train vs PyTorch (same architecture, batch, threads, steps).
bench-train: $(CNN)
	@bash .ci/deps.sh bench
	CNN=$(CNN) bash bench/train.sh

# The bundled default model (models/README.md: command, seed, time, accuracy): trains
# fashion_cnn on Fashion-MNIST with `cnn train`, then evaluates it on the 10,000 test images.
FASHION_DATA ?= /usr/share/datasets/fashion-mnist
MODEL_OUT    ?= models/repository/fashion/1/model.cnn
FASHION_LABELS := T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot
model: $(CNN)
	@bash .ci/deps.sh model
	./$(CNN) train fashion_cnn --data $(FASHION_DATA) --labels '$(FASHION_LABELS)' \
	    --epochs 30 --batch 128 --lr 0.1 --momentum 0.9 --weight-decay 5e-4 \
	    --schedule cosine --augment crop --crop-pad 2 --val-split 0.05 --seed 1 \
	    --threads 2 --out $(MODEL_OUT)
	./$(CNN) eval $(MODEL_OUT) --data $(FASHION_DATA) --split t10k

# The dashboard in headless Debian chromium via puppeteer-core (tests/browser/; not in check:
# needs chromium and npm).  Exit 77 = skipped (the reason is printed).
.PHONY: test-browser
test-browser: $(CNN) $(CNND)
	CNN=$(CNN) CNND=$(CNND) BUILD=$(BUILD) bash tests/browser/run.sh

# Saliency sanity (issue 14): mass on the object and occlusion drops over 100 test images.
SALIENCY    := $(BUILD)/bench_saliency
$(SALIENCY): bench/saliency.c $(LIBCNN)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -Icore $< $(LIBCNN) -o $@ $(ALL_LDFLAGS) $(PKG_LIBS)
.PHONY: bench-saliency
bench-saliency: $(SALIENCY)
	OPENBLAS_NUM_THREADS=1 ./$(SALIENCY) models/repository/fashion/1/model.cnn $(FASHION_DATA) 100

# The README's fine-tune example: Debian's Fashion-MNIST copied (not linked: cnnd refuses
# symlinks leading out of the data root) into DATA_ROOT/fashion-mnist.  DEMO_PER_CLASS=N
# writes the first N training images of each class instead (the fast README test).
DATA_ROOT ?= models/data
DEMO_PER_CLASS ?=
.PHONY: demo-data
demo-data:
	@bash .ci/deps.sh model
	mkdir -p $(DATA_ROOT)/fashion-mnist
ifeq ($(DEMO_PER_CLASS),)
	rm -f $(DATA_ROOT)/fashion-mnist/*-ubyte
	cp $(FASHION_DATA)/train-images-idx3-ubyte.gz $(FASHION_DATA)/train-labels-idx1-ubyte.gz \
	   $(FASHION_DATA)/t10k-images-idx3-ubyte.gz $(FASHION_DATA)/t10k-labels-idx1-ubyte.gz \
	   $(DATA_ROOT)/fashion-mnist/
else
	rm -f $(DATA_ROOT)/fashion-mnist/*-ubyte*
	python3 tests/integration/fm_subset.py $(DATA_ROOT)/fashion-mnist --per-class $(DEMO_PER_CLASS) \
	    --data $(FASHION_DATA)
endif
	@echo "demo-data: $(DATA_ROOT)/fashion-mnist ready (dataset path \"fashion-mnist\")"

# A fresh copy of the tree runs README.md's shell blocks in order, each command printed with
# its status (tests/integration/t_readme.sh, also part of itest); README_TEST=full also runs
# the blocks marked slow and fine-tunes on all of Fashion-MNIST.
.PHONY: readme-test
readme-test: $(CNN) $(CNND)
	CNN=$(CNN) CNND=$(CNND) bash tests/integration/t_readme.sh

# Fuzz targets (tests/fuzz/, docs/fuzzing.md), one per parser.  fuzz-replay (in `check`, and
# under ASan+UBSan in `san`) runs every committed corpus and crash input through each target
# with a plain main (gcc); `make fuzz FUZZ_SECONDS=N` builds them with clang's libFuzzer
# (ASan+UBSan) and runs each N seconds, printing execs, coverage, crashes and hangs.
.PHONY: fuzz fuzz-bins fuzz-replay
FUZZ_TARGETS := image infer multipart jobspec config model onnx http
FUZZ_SECONDS ?= 60
FUZZ_DIR    := $(BUILD)/fuzz
FUZZ_BINS   := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_OBJ    := $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/fuzz_%.o) $(BUILD)/tests/fuzz/replay.o
.SECONDARY: $(FUZZ_OBJ)
$(BUILD)/tests/fuzz/%.o: ALL_CFLAGS += $(SERVER_CFLAGS) -Iserver
$(FUZZ_DIR)/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(if $(FUZZ_LIBFUZZER),,$(BUILD)/tests/fuzz/replay.o) \
                    $(LIBCNND) $(LIBCNN)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(if $(FUZZ_LIBFUZZER),-fsanitize=fuzzer,$(BUILD)/tests/fuzz/replay.o) \
	    $(if $(filter http,$*),-Wl$(comma)--wrap=MHD_start_daemon) $(LIBCNND) $(LIBCNN) \
	    $(SERVER_LIBS) $(PKG_LIBS)
fuzz-bins: $(FUZZ_BINS)
fuzz-replay: $(FUZZ_BINS)
	@for t in $(FUZZ_TARGETS); do OPENBLAS_NUM_THREADS=1 ./$(FUZZ_DIR)/fuzz_$$t \
	    tests/fuzz/corpus/$$t tests/fuzz/crashes/$$t || exit 1; done
fuzz:
	$(MAKE) CC=clang SAN=address,undefined,fuzzer-no-link FUZZ_LIBFUZZER=1 fuzz-bins
	OPENBLAS_NUM_THREADS=1 bash tests/fuzz/run.sh build-address-undefined-fuzzer-no-link/fuzz \
	    $(FUZZ_SECONDS) $(FUZZ_TARGETS)
-include $(FUZZ_OBJ:.o=.d)

# Not in `make test` (minutes, root for the tmpfs): a mixed-load soak of SOAK_SECONDS
# (default 600) and fault injection while a fine-tune job publishes (KILL_ROUNDS kill -9 rounds).
.PHONY: soak faults
soak: $(CNN) $(CNND) $(LOADGEN)
	CNN=$(CNN) CNND=$(CNND) LOADGEN=$(LOADGEN) SOAK_SECONDS=$(or $(SOAK_SECONDS),600) bash tests/soak/soak.sh
faults: $(CNN) $(CNND)
	CNN=$(CNN) CNND=$(CNND) KILL_ROUNDS=$(or $(KILL_ROUNDS),100) bash tests/soak/faults.sh

clean:
	rm -rf build build-*

# Every C folder; the root .clang-format decides the style.
format:
	clang-format -i $(wildcard core/*.[ch] core/tool/*.[ch] server/*.[ch] tests/unit/*.[ch] \
	    tests/server/*.[ch] tests/integration/*.[ch] clients/*.[ch] bench/*.[ch])

-include $(CORE_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(SERVER_OBJ:.o=.d) $(SRV_TEST_OBJ:.o=.d)
