#!/usr/bin/env bash
# What `flotilla new` does, in shell (the reference for it, and a way to scaffold from a
# checkout): writes ./NAME from templates/KIND with the SDK's sources vendored at
# NAME/vendor/flotilla-guest, so the project builds with no path back to this repository.
#
#   sdk/guest/templates/new.sh http|job NAME [REGISTRY]   REGISTRY defaults to 127.0.0.1:6443
set -euo pipefail
kind=${1:?usage: new.sh http|job NAME [REGISTRY]}
name=${2:?usage: new.sh http|job NAME [REGISTRY]}
registry=${3:-127.0.0.1:6443}
here=$(cd "$(dirname "$0")" && pwd)
sdk=$(dirname "$here")
[ -d "$here/$kind" ] || { echo "new.sh: no template $kind (http, job)" >&2; exit 1; }
[[ $name =~ ^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || { echo "new.sh: NAME must be a DNS label starting with a letter (a-z, 0-9, -)" >&2; exit 1; }
[ ! -e "$name" ] || { echo "new.sh: $name exists" >&2; exit 1; }
mkdir -p "$name/vendor/flotilla-guest"
(cd "$here/$kind" && find . -type f) | while read -r f; do
  mkdir -p "$name/$(dirname "$f")"
  sed -e "s|{{name}}|$name|g" -e "s|{{sdk_path}}|vendor/flotilla-guest|g" -e "s|{{registry}}|$registry|g" \
    "$here/$kind/$f" > "$name/$f"
done
cp -r "$sdk/Cargo.toml" "$sdk/README.md" "$sdk/src" "$name/vendor/flotilla-guest/"
echo "created $name ($kind); build it with: $(cd "$sdk/../.." && pwd)/scripts/build-guests.sh $name/target/wasm $name"
