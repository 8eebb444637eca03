# Makefile - builds build/mxgate, build/mxload, build/mxsink and the unit
# tests; `make test`, `make asan`, `make demo`, `make bench`, `make clean`.
# Quiet unless V=1. BUILD selects the output folder (make asan uses
# build-asan with the sanitizers and without jemalloc, which ASan replaces).

BUILD   ?= build
CC      ?= cc
OPT     ?= -O2
SAN     ?=
V       ?= 0

# --- wolfSSL: private AES-NI build or the system library ----------------
# scripts/build-wolfssl.sh builds Debian's own wolfSSL source with AES-NI
# and the SP assembly into .deps/wolfssl (`make clean` keeps it, `make
# distclean` removes it; `make wolfssl` runs the script by hand).
# $(BUILD)/wolfssl.mk says which library this build uses. make remakes it
# before anything else (running the script: quick and silent when the build
# is current) and then re-reads this Makefile, so even a fresh clone has
# decided before the first compile. A failing script (no network...) only
# warns and the system libwolfssl is used. WOLFSSL=system forces the system
# library, WOLFSSL=private fails instead of falling back. Objects depend on
# wolfssl.mk, which changes with the choice and with each private rebuild,
# because the two options.h give different struct layouts.
WOLFSSL        ?= auto
WOLFSSL_PREFIX := .deps/wolfssl
WOLFSSL_MK     := $(BUILD)/wolfssl.mk
WOLFSSL_USE    := system
# Goals that build nothing themselves (test, asan... decide in their sub-make).
WOLFSSL_NO_MK  := clean distclean deps wolfssl test asan demo bench fuzz
ifneq ($(filter-out $(WOLFSSL_NO_MK),$(or $(MAKECMDGOALS),all)),)
include $(WOLFSSL_MK)
endif
ifeq ($(WOLFSSL_USE),private)
# -I first, ahead of /usr/include: its options.h must win over the system one.
WOLFSSL_CFLAGS := -I$(WOLFSSL_PREFIX)/include
WOLFSSL_LIBS   := $(WOLFSSL_PREFIX)/lib/libwolfssl.a -lpthread -ldl -lm
else
WOLFSSL_CFLAGS :=
WOLFSSL_LIBS   := -lwolfssl
endif
# --- end wolfSSL ---------------------------------------------------------

CFLAGS  := $(WOLFSSL_CFLAGS) -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -D_GNU_SOURCE \
           -Icore -Iconf -Iproxy -Ibench -MMD -MP $(SAN) $(EXTRA_CFLAGS)
LDFLAGS := $(SAN)
LIBS    := -luring -linih -lhiredis -lpthread -lm -lcrypt $(WOLFSSL_LIBS)
ifeq ($(SAN),)
LIBS    += -ljemalloc
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

MAINS    := proxy/main.c bench/mxload.c bench/mxsink.c bench/tlsbench.c
LIB_SRC  := $(filter-out $(MAINS),$(wildcard core/*.c conf/*.c proxy/*.c bench/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HELPERS := $(filter-out $(UNIT_SRC) tests/unit/bench_%.c,$(wildcard tests/unit/*.c))
PROGS    := $(BUILD)/mxgate $(BUILD)/mxload $(BUILD)/mxsink $(BUILD)/tlsbench

.PHONY: all unit test asan demo bench clean distclean deps fuzz wolfssl FORCE
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

# tlsbench: wolfSSL alone, in memory (the yardstick for mxgate's TLS cost);
# it needs neither libmx.a nor mxgate's other libraries.
$(BUILD)/tlsbench: $(BUILD)/obj/bench/tlsbench.o
	@$(if $(filter 0,$(V)),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(WOLFSSL_LIBS) -lm

# wolfSSL choice (see the top): remade on every run, rewritten only when it
# changes, so that only a change recompiles. Not again in the make that
# re-reads the Makefile after it changed (MAKE_RESTARTS set): this run has
# just decided.
$(WOLFSSL_MK): $(if $(MAKE_RESTARTS),,FORCE)
	@mkdir -p $(dir $@)
	$(Q)use=system; \
	if [ "$(WOLFSSL)" != system ]; then \
		if scripts/build-wolfssl.sh; then use=private; \
		elif [ "$(WOLFSSL)" = private ]; then exit 1; \
		else echo "warning: no private wolfSSL build; using the system libwolfssl" >&2; fi; \
	fi; \
	{ echo "# written by make (Makefile, wolfSSL block): the wolfSSL of $(BUILD)"; \
	  echo "WOLFSSL_USE := $$use"; \
	  if [ $$use = private ]; then sed 's/^/# /' $(WOLFSSL_PREFIX)/.mxgate-stamp; fi; \
	} >$@.$$$$; \
	if cmp -s $@.$$$$ $@; then rm -f $@.$$$$; else mv -f $@.$$$$ $@; fi
$(LIB_OBJ) $(MAINS:%.c=$(BUILD)/obj/%.o) $(UNIT_BIN): $(WOLFSSL_MK)
FORCE:

wolfssl:
	$(Q)scripts/build-wolfssl.sh

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

# The TLS section compares the private AES-NI wolfSSL with Debian's own, so a
# second build links the system library (build-syswolfssl/).
bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory BUILD=build-syswolfssl WOLFSSL=system all
	$(Q)BENCH_SYSTEM_WOLFSSL_BUILD=build-syswolfssl scripts/bench.sh $(BUILD)

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
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) tests/fuzz/fuzz_envelope.c proxy/envelope.c proxy/smtp_parse.c -o build/fuzz/fuzz_envelope
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) tests/fuzz/fuzz_sasl.c proxy/sasl.c -o build/fuzz/fuzz_sasl
	$(Q)for t in smtp_parse data_scan proxy_proto envelope sasl; do \
		mkdir -p build/fuzz/corpus_$$t; \
		seeds=; [ -d tests/fuzz/corpus_$$t ] && seeds=tests/fuzz/corpus_$$t; \
		build/fuzz/fuzz_$$t -dict=tests/fuzz/smtp.dict -max_len=4096 \
			-max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus_$$t $$seeds || exit 1; \
	done

clean:
	rm -rf build build-asan build-syswolfssl

# Also the private wolfSSL build and its downloaded source.
distclean: clean
	rm -rf .deps

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
