# govs in a container: the static binaries and nothing else (no shell, no
# libc). Built by `make image`, which stages build/image/ as the context:
#   docker run --rm govs:latest version
#   docker run -d -p 8080:8080 -v $PWD/govs.yaml:/etc/govs/govs.yaml:ro govs:latest
# Kernel NAT needs the host's network and CAP_NET_ADMIN as root:
#   docker run -d --network host --user 0 --cap-add NET_ADMIN --cap-add NET_RAW \
#     -v /etc/govs/govs.yaml:/etc/govs/govs.yaml:ro govs:latest
# docs/operations.md has the details.
FROM scratch
COPY govs govsadm /usr/bin/
COPY LICENSE NOTICE THIRD_PARTY_LICENSES /usr/share/doc/govs/
COPY govs.yaml /etc/govs/govs.yaml
# The control socket's directory, writable by the default user.
COPY --chown=65534:65534 run/ /run/
ENV GOVS_SOCKET=/run/govs/govs.sock
# nobody: userspace (proxy) forwarding needs no privilege.
USER 65534:65534
ENTRYPOINT ["/usr/bin/govs"]
CMD ["run", "-c", "/etc/govs/govs.yaml"]
