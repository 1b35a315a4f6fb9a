# ftp-proxy — top-level targets. POSIX make subset: works with GNU make and
# BSD make. Every target delegates to a script or to regress/Makefile.

PREFIX =	/usr/local
DESTDIR =
CARGO =		cargo
DISTDIR =	.
DIST_REF =	HEAD

all: build

build:
	@command -v $(CARGO) >/dev/null 2>&1 || sh regress/linux/install-deps.sh rust
	$(CARGO) build --release --locked

# Shows the daemon doing its job: three network namespaces, real FTP
# server and clients, a transfer in each mode through kernel NAT, the
# pinholes it installed, then everything torn down. Needs root.
demo: build
	sh regress/linux/install-deps.sh netns
	python3 regress/linux/demo.py

# Every test: unit tests, lint, man page, OpenBSD type-check, and the
# end-to-end suite in network namespaces. Needs root; installs what it lacks.
# -s keeps GNU make from printing "Leaving directory" after the summary
# line `N passed, N failed, N skipped`, which must end the output.
regress:
	cd regress && $(MAKE) -s regress

# Benchmarks against the alternatives, one run, ratios printed.
bench: build
	python3 bench/bench.py

# Coverage-guided fuzzing of the protocol core, each target for a bounded
# time (FUZZ_SECONDS, default 60).
fuzz:
	sh fuzz/run.sh

# The release tarball ftp-proxy-<version>.tar.gz of DIST_REF (default HEAD;
# a release uses its tag, e.g. DIST_REF=v0.1.0) in DISTDIR: git archive
# through gzip -n, the same bytes every time (tools/port/make-distfile).
dist:
	sh tools/port/make-distfile -o "$(DISTDIR)" $(DIST_REF)

install: build
	sh dist/install.sh install "$(DESTDIR)" "$(PREFIX)"

uninstall:
	sh dist/install.sh uninstall "$(DESTDIR)" "$(PREFIX)"

clean:
	$(CARGO) clean

.PHONY: all build demo regress bench fuzz dist install uninstall clean
