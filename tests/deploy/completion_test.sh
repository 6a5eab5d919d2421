#!/usr/bin/env bash
# Shell completion (completions/vicreg.bash, completions/_vicreg), from the outside:
#   1. sourced into this (non-interactive) bash: `complete -p` names the function for all three commands;
#   2. every flag that a binary's (or subcommand's) --help lists is offered after `--` (the test
#      parses --help itself, with its own regex);
#   3. a few compgen results: subcommands, flag choices (-o table|json, --probe, --device);
#   4. job ids: a real vicreg_coordinator (--launcher none, its own temp state dir, a free port)
#      with one submitted job; `vicregctl --state-dir D status <TAB>` offers its id;
#   5. zsh (when installed): the same function under stubs of compadd/_files;
#   6. `cmake --install BUILD --component completions` puts them where bash-completion and zsh look.
# usage: completion_test.sh SOURCE_DIR BUILD_DIR VICREGCTL VICREG_WORKER VICREG_EVAL VICREG_COORDINATOR
set -uo pipefail
src=$1 build=$2 ctl=$3 worker=$4 eval_bin=$5 coord=$6
tmp=$(mktemp -d /tmp/vicreg-completion-XXXXXX)
coord_pid=""
cleanup() {
  [[ -n $coord_pid ]] && kill "$coord_pid" 2>/dev/null && wait "$coord_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
FAIL() { echo "FAIL: $*"; fail=1; }

mkdir -p "$tmp/bin"
ln -s "$ctl" "$tmp/bin/vicregctl"
ln -s "$worker" "$tmp/bin/vicreg_worker"
ln -s "$eval_bin" "$tmp/bin/vicreg_eval"
export PATH="$tmp/bin:$PATH"

# The coordinator of step 4 starts while the --help texts are read.
state="$tmp/state"
"$coord" --state-dir "$state" --listen 127.0.0.1:0 --metrics-port off --launcher none --slots 1 \
  >"$tmp/coord.log" 2>&1 &
coord_pid=$!

# Every --help text, read once and in parallel (the LibTorch binaries take a second or more to load):
# the test parses them with its own regex, and the completion reads them through _vicreg_help_text
# (checked against the real one for vicregctl below).
SECONDS=0
mkdir -p "$tmp/help"
subs_in() { sed -n '/^Subcommands:/,/^[^ ]/p' "$1" | grep -E '^  [a-z]' | awk '{ print $1 }'; }
for c in vicregctl vicreg_worker vicreg_eval; do "$c" --help >"$tmp/help/$c" 2>/dev/null & done
wait_helps() { for p in $(jobs -p); do [[ $p == "$coord_pid" ]] || wait "$p"; done; }
wait_helps
for c in vicregctl vicreg_worker vicreg_eval; do
  for s in $(subs_in "$tmp/help/$c"); do "$c" "$s" --help >"$tmp/help/$c $s" 2>/dev/null & done
done
wait_helps
echo "[${SECONDS} s] --help texts read"

# The script is sourced into this shell; complete_words WORDS... completes the last word.
# shellcheck source=/dev/null
source "$src/completions/vicreg.bash"
[[ $(_vicreg_help_text vicregctl "") == "$(cat "$tmp/help/vicregctl")" ]] || FAIL "_vicreg_help_text vicregctl differs"
_vicreg_help_text() { cat "$tmp/help/$1${2:+ $2}"; }
complete_words() {
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _vicreg_complete
  printf '%s\n' "${COMPREPLY[@]}"
}
for f in "$tmp"/help/*; do  # fill the completion's cache here, before the $(...) subshells
  name=${f##*/}
  _vicreg_help "${name%% *}" "$([[ $name == *" "* ]] && echo "${name#* }")"
done

# 1. complete -p
out=$(complete -p vicregctl vicreg_worker vicreg_eval 2>&1)
for c in vicregctl vicreg_worker vicreg_eval; do
  grep -q -- "-F _vicreg_complete $c\$" <<<"$out" || FAIL "complete -p $c: got: $out"
done
echo "[${SECONDS} s] complete -p: ok"

# 2. every flag of --help, per command and subcommand
flags_of_help() {  # the --help of "$*": the names in the first column of the option lines
  grep -E '^  -' "$tmp/help/$*" | awk '{ print $1 }' | tr ',' '\n' | grep -E '^--?[A-Za-z]' | sort -u
}
subs_of_help() { subs_in "$tmp/help/$*"; }
check_flags() {  # check_flags WORDS... : the flags of `WORDS --help` are offered for `WORDS --`
  local want have missing
  want=$(flags_of_help "$@")
  [[ -n $want ]] || { FAIL "$* --help lists no flags"; return; }
  have=$(complete_words "$@" "-" | sort -u)
  missing=$(comm -23 <(echo "$want") <(echo "$have") | tr '\n' ' ')
  [[ -z $missing ]] || FAIL "'$* -<TAB>' lacks: $missing"
  echo "$*: $(wc -l <<<"$want") flags offered"
}
for c in vicregctl vicreg_worker vicreg_eval; do
  check_flags "$c"
  for s in $(subs_of_help "$c"); do check_flags "$c" "$s"; done
done
subs=$(subs_of_help vicregctl | sort | tr '\n' ' ')
got=$(complete_words vicregctl "" | sort | tr '\n' ' ')
[[ -n $subs && $got == "$subs" ]] || FAIL "vicregctl <TAB>: got '$got', want '$subs'"

# 3. a few compgen results
expect() {  # expect "WANT" WORDS...
  local want=$1 got
  shift
  got=$(complete_words "$@" | tr '\n' ' ' | sed 's/ $//')
  [[ $got == "$want" ]] || FAIL "'$*<TAB>': got '$got', want '$want'"
}
expect "list logs" vicregctl l
expect "table json" vicregctl -o ""
expect "json" vicregctl --output j
expect "linear knn all" vicreg_eval --probe ""
expect "cpu cuda" vicreg_worker --device ""
expect "--resume" vicreg_worker --resu
echo "[${SECONDS} s] compgen results: checked"

# 4. job ids from a running coordinator
for _ in $(seq 100); do [[ -s $state/coordinator.json ]] && break; sleep 0.1; done
id=$(vicregctl --state-dir "$state" submit "$src/configs/tiny_cpu.yaml" 2>"$tmp/submit.err")
if [[ -z $id ]]; then
  FAIL "could not submit a job: $(cat "$tmp/submit.err") / $(tail -5 "$tmp/coord.log")"
else
  got=$(complete_words vicregctl --state-dir "$state" status "")
  grep -qx -- "$id" <<<"$got" || FAIL "vicregctl --state-dir D status <TAB>: got '$got', want job id $id"
  echo "[${SECONDS} s] job ids: $id offered"
fi

# 5. zsh, when installed
if command -v zsh >/dev/null; then
  got=$(zsh -f -c '
    compadd() { [[ $1 == -- ]] && shift; print -rl -- "$@"; }
    _files() { :; }
    source "$1" >/dev/null 2>&1
    words=(vicregctl -o ""); CURRENT=3; _vicreg' zsh "$src/completions/_vicreg" | tr '\n' ' ')
  [[ $got == "table json " ]] || FAIL "zsh: vicregctl -o <TAB>: got '$got'"
  echo "[${SECONDS} s] zsh: ok"
else
  echo "zsh not installed: its completion not exercised"
fi

# 6. cmake --install
cmake --install "$build" --prefix "$tmp/prefix" --component completions >"$tmp/install.log" 2>&1 ||
  FAIL "cmake --install --component completions: $(cat "$tmp/install.log")"
for f in share/bash-completion/completions/vicregctl share/bash-completion/completions/vicreg_worker \
  share/bash-completion/completions/vicreg_eval share/zsh/vendor-completions/_vicreg; do
  [[ -f $tmp/prefix/$f ]] || FAIL "cmake --install did not install $f"
done
echo "[${SECONDS} s] cmake --install: ok"
exit $fail
