# Python tools the checks need (moto, cfn-lint, sam, schemathesis, cargo-lambda), installed once into .tools/venv.
# Sourced by scripts/test.

TOOLS_DIR=${TOOLS_DIR:-$PWD/.tools}
TOOLS_VENV=$TOOLS_DIR/venv
TOOLS_STAMP=$TOOLS_VENV/.installed-$(sha256sum scripts/requirements-tools.txt | cut -c1-12)

ensure_python_tools() {
  if [[ ! -f $TOOLS_STAMP ]]; then
    echo "==> installing Python tools into $TOOLS_VENV (moto, cfn-lint, sam, schemathesis, cargo-lambda)"
    rm -rf "$TOOLS_VENV"
    python3 -m venv "$TOOLS_VENV"
    # uv installs the same pins several times faster than pip (7 s against 45 s, fresh).
    "$TOOLS_VENV/bin/pip" install --quiet "uv==0.13.8"
    "$TOOLS_VENV/bin/uv" pip install --quiet --python "$TOOLS_VENV/bin/python" \
      -r scripts/requirements-tools.txt
    touch "$TOOLS_STAMP"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts moto (a DynamoDB-compatible server) on loopback and points the AWS SDK at it.
start_moto() {
  local port
  port=$(free_port)
  # scripts/moto_server.py: moto with its per-item table copy in transactions fixed (see there).
  "$TOOLS_VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$port" > "$TOOLS_DIR/moto.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" \
    || { echo "moto did not start:"; cat "$TOOLS_DIR/moto.log"; exit 1; }
  export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$port
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
  # Keep the SDK from looking for real credentials or instance metadata.
  export AWS_EC2_METADATA_DISABLED=true
  echo "==> moto listening on 127.0.0.1:$port (pid $MOTO_PID)"
}

stop_moto() {
  if [[ -n ${MOTO_PID:-} ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}
