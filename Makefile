# Makefile - builds build/mxgate, build/mxload, build/mxsink and the unit
# tests; `make test`, `make asan`, `make demo`, `make bench`, `make clean`.
# Quiet unless V=1. BUILD selects the output folder (make asan uses
# build-asan with the sanitizers and without jemalloc, which ASan replaces).

BUILD   ?= build
CC      ?= cc
OPT     ?= -O2
SAN     ?=
V       ?= 0

CFLAGS  := -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -D_GNU_SOURCE \
           -Icore -Iconf -Iproxy -Ibench -MMD -MP $(SAN) $(EXTRA_CFLAGS)
LDFLAGS := $(SAN)
LIBS    := -luring -linih -lhiredis -lpthread -lm
ifeq ($(SAN),)
LIBS    += -ljemalloc
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

MAINS    := proxy/main.c bench/mxload.c bench/mxsink.c
LIB_SRC  := $(filter-out $(MAINS),$(wildcard core/*.c conf/*.c proxy/*.c bench/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELPERS := $(filter-out $(UNIT_SRC) tests/unit/bench_%.c,$(wildcard tests/unit/*.c))
PROGS    := $(BUILD)/mxgate $(BUILD)/mxload $(BUILD)/mxsink

.PHONY: all unit test asan demo bench clean deps fuzz
all: $(PROGS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(filter 0,$(V)),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libmx.a: $(LIB_OBJ)
	@$(if $(filter 0,$(V)),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/mxgate: $(BUILD)/obj/proxy/main.o $(BUILD)/libmx.a
	@$(if $(filter 0,$(V)),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/mxload: $(BUILD)/obj/bench/mxload.o $(BUILD)/libmx.a
	@$(if $(filter 0,$(V)),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/mxsink: $(BUILD)/obj/bench/mxsink.o $(BUILD)/libmx.a
	@$(if $(filter 0,$(V)),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(BUILD)/libmx.a
	@mkdir -p $(dir $@)
	@$(if $(filter 0,$(V)),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(UNIT_HELPERS) $(BUILD)/libmx.a $(LIBS) -lcmocka

unit: $(UNIT_BIN)

deps:
	$(Q)scripts/install-deps.sh

# The whole suite: unit tests, then integration tests with real processes.
test: deps
	$(Q)$(MAKE) --no-print-directory all unit
	$(Q)scripts/run-tests.sh $(BUILD)

asan: deps
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all unit
	$(Q)MXGATE_SANITIZED=1 scripts/run-tests.sh build-asan

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh $(BUILD)

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench.sh $(BUILD)

# libFuzzer targets (needs clang); each runs FUZZ_SECONDS on its corpus.
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -Icore -Iproxy \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
fuzz:
	@mkdir -p build/fuzz
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) tests/fuzz/fuzz_smtp_parse.c proxy/smtp_parse.c -o build/fuzz/fuzz_smtp_parse
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) tests/fuzz/fuzz_data_scan.c proxy/data_scan.c -o build/fuzz/fuzz_data_scan
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) tests/fuzz/fuzz_proxy_proto.c proxy/proxy_proto.c core/net.c -o build/fuzz/fuzz_proxy_proto
	$(Q)for t in smtp_parse data_scan proxy_proto; do \
		mkdir -p build/fuzz/corpus_$$t; \
		seeds=; [ -d tests/fuzz/corpus_$$t ] && seeds=tests/fuzz/corpus_$$t; \
		build/fuzz/fuzz_$$t -dict=tests/fuzz/smtp.dict -max_len=4096 \
			-max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus_$$t $$seeds || exit 1; \
	done

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
