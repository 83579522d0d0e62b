# The pod sandbox ("pause") image for the local node's containerd (sandbox_image): the public pause image's
# registry cannot be reached here. It only has to hold the pod's namespaces open: sleep, and exit on SIGTERM.
ARG DEBIAN=tao-local/debian:bookworm
FROM ${DEBIAN}
ENTRYPOINT ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
