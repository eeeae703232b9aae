# ceustream: two commands do all set-up on a fresh Debian 12 machine, and are safe to repeat.
#   make demo   -> system packages, a virtualenv, the package (with its GStreamer plugin), `ceustream demo`
#   make test   -> the same plus the test and training extras, then the whole test suite
# Other targets: make bench | make paper | make gpu-check | make asan | make clean
#                make docs (API reference -> docs/api/) | make image (OCI image, minutes; root)
#                make deb (Debian package -> dist/, minutes) | make deb-check (apt-installs it on a clean Debian 12; root)

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)

# GStreamer runtime + plugins (x264enc is in -ugly, h264parse in -bad, avdec_* in -libav),
# the headers for the native elements, and what PyGObject needs to build in a virtualenv;
# ffmpeg is the tests' independent encoder (files GStreamer did not write).
APT_PKGS := gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
	gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 \
	libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libzmq3-dev libjson-glib-dev \
	libcairo2-dev libpango1.0-dev libgirepository1.0-dev pkg-config cmake gcc g++ \
	python3-dev python3-venv fonts-dejavu-core gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 \
	ffmpeg tesseract-ocr \
	orthanc orthanc-dicomweb dcmtk libgdcm-tools dicom3tools
# stunnel4: the tests' HTTPS terminator in front of Orthanc (dicomweb+https://); curl: a STOW-RS client
APT_PKGS += stunnel4 curl
# systemd-analyze / systemd-sysusers check the service files (tests/test_deploy.py)
APT_PKGS += systemd
# `make deb`: dpkg-architecture/dpkg-deb, readelf (tests/test_deploy.py), Debian's PyGObject for the package's venv
APT_PKGS += dpkg-dev binutils python3-gi

.PHONY: demo test system venv venv-test bench paper gpu-check asan clean docs image overlay-frames \
	deb deb-check

demo: venv
	$(VENV)/bin/ceustream demo

test: venv-test
	$(PY) -m pytest -q

system:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: system $(PY)
	$(PIP) install -q .
	$(VENV)/bin/ceustream install-plugin

# torch is pinned to the CPU build (a bare "torch" can pull a CUDA build of several GB)
venv-test: venv
	$(PIP) install -q "torch==2.13.0" "onnxconverter-common>=1.14" "onnxscript>=0.1" \
		"pytest>=7" "hypothesis>=6" "jsonschema>=4.18" "import-linter>=2.1" "ray==2.60.0" \
		"pdoc>=14"

bench: venv-test
	$(PY) -m ceustream.benchmarks.run_all

paper: venv-test
	$(PY) -m ceustream.benchmarks.paper_tables

gpu-check:
	bash benchmarks/gpu_check.sh

asan: venv-test
	$(PY) -m pytest -q tests/test_overlay.py -k address_sanitizer

# the Python API's reference, from its docstrings (README "Python API"): docs/api/index.html
API_MODULES := ceustream '!ceustream.benchmarks' '!ceustream.models' '!ceustream.pipelines' \
	'!ceustream.engine' ceustream.engine.app.api ceustream.engine.app.embed ceustream.engine.wire.subscriber \
	ceustream.engine.wire.types ceustream.engine.wire.schemas ceustream.engine.app.health \
	ceustream.engine.core.errors
docs: venv
	$(PIP) install -q "pdoc>=14"
	$(VENV)/bin/pdoc -o docs/api --docformat restructuredtext $(API_MODULES)

# the OCI image (deploy/Containerfile): a Debian base by mmdebstrap, podman build, then the
# built image checked by chroot (README "Deploy: service and image"); not part of `make test`
image: venv
	@for p in podman mmdebstrap; do command -v $$p >/dev/null || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q podman mmdebstrap; break; }; done
	nice -n 10 $(SUDO) env PYTHON=$(PY) bash deploy/build-image.sh

# the Debian package (README "Install as a Debian package"): a virtualenv in /opt/ceustream over
# Debian's python3 and GStreamer, the plugin in the system plugin folder, the service files
deb: venv
	nice -n 10 env PYTHON=$(PY) bash deploy/build-deb.sh
# apt installs dist/ceustream_*.deb on a clean Debian 12 (podman, root), runs a replay, purges it
deb-check: deb
	@command -v podman >/dev/null || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q podman mmdebstrap; }
	nice -n 10 $(SUDO) env PYTHON=$(PY) bash deploy/build-deb.sh --check-only

# the README's overlay frames, full size, into a git-ignored folder
overlay-frames: venv-test
	$(PY) tests/overlay_frames.py build/overlay-frames

clean:
	rm -rf build dist .pytest_cache .hypothesis docs/api
