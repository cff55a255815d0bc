#!/usr/bin/env bash
# `make shell`: an interactive shell for the running demo (`make demo` in another terminal):
# its KUBECONFIG, and the stratops CLI and kubectl on PATH. Exit the shell to leave; the demo keeps running.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
env_file="$root/.stratops-demo.env"
if [ ! -f "$env_file" ]; then
  echo "no demo is running: start one with \`make demo\` in another terminal, then run \`make shell\` again" >&2
  exit 1
fi
rc=$(mktemp)
trap 'rm -f "$rc"' EXIT
{ [ -f "$HOME/.bashrc" ] && echo "source \"$HOME/.bashrc\""; cat "$env_file"
  echo 'PS1="(stratops demo) ${PS1:-\$ }"'
  echo 'echo "stratops demo shell: try \`stratops status\`; exit to leave (the demo keeps running)"'; } > "$rc"
if [ "$#" -gt 0 ]; then  # a command instead of an interactive shell (scripts, tests)
  # shellcheck disable=SC1090
  source "$env_file"; exec "$@"
fi
bash --rcfile "$rc" -i
