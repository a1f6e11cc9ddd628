# Makefile: the committed entry point; the real rules are in objs/Makefile,
# which ./configure writes (run here with no options if it is missing).

MAKEFLAGS += --no-print-directory

default: objs/Makefile
	$(MAKE) -f objs/Makefile

objs/Makefile:
	./configure

unit: objs/Makefile
	$(MAKE) -f objs/Makefile unit

# the whole suite: normal and sanitizer trees, unit and integration
test:
	t/check

install: objs/Makefile
	$(MAKE) -f objs/Makefile install

clean:
	rm -rf objs objs-san

# docs/directives.md from the directive tables
docs: objs/Makefile
	$(MAKE) -f objs/Makefile unit
	PD_WRITE_DOCS=1 objs/t/unit/core/test_pd_directives

# libFuzzer targets (t/fuzz), built into objs/fuzz/, FUZZ_TIME seconds each
FUZZ_TIME = 60

fuzz:
	FUZZ_TIME=$(FUZZ_TIME) t/fuzz/run

check-style:
	auto/check-style

# benchmarks against nginx + nchan and a bare epoll server (bench/README.md);
# BENCH_FLAGS passes options to bench/run, e.g. BENCH_FLAGS=--quick
bench: default
	$(MAKE) -f bench/Makefile
	bench/run $(BENCH_FLAGS)

.PHONY: default unit test install clean check-style docs bench fuzz
