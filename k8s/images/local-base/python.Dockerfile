# A local stand-in for python:3.12-slim-bookworm where Docker Hub cannot be reached (scripts/k8s/build-images.sh
# builds it from a debootstrap root filesystem): Debian's python3 (3.11 in bookworm) in a venv at
# /usr/local/python, first on PATH, so `python` and `pip install` work as in the official image (Debian's own
# python3 refuses system-wide pip installs, PEP 668). Stage Dockerfiles take it as their BASE build argument.
ARG DEBIAN=tao-local/debian:bookworm
FROM ${DEBIAN}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]
