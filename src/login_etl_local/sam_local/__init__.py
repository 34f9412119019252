"""``make test-sam-local``: the built function in a Lambda container, run by ``sam local invoke``.

What it takes on a machine with no container engine and no registry (CI's):

- ``engine``: Debian's ``docker.io``, and a ``dockerd`` of our own (private socket, data and
  exec roots), started and stopped here, with the host's network state put back after;
- ``base_image``: a stand-in for ``public.ecr.aws/lambda/python:<ver>-<arch>`` built from a
  ``debootstrap`` root filesystem, cached in the engine's data root;
- ``relay``: the local stack (``login-etl stack up``) listens on loopback; the relay makes it
  reachable from the container over the docker bridge;
- ``session``: all of it in order, then ``tests/sam_local`` (the real ``sam local invoke`` on
  every event in ``events/``), then everything undone, whatever happened.

Used only on developer machines and in CI; nothing here ships in the function.
"""
