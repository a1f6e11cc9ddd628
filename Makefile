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

check-style:
	auto/check-style

.PHONY: default unit test install clean check-style
