# bash completion for vicregctl, vicreg_worker and vicreg_eval.
#
# Subcommands, flags and the choices of flags like --output table|json are read from the binary's own
# --help (CLI11's layout), once per shell and binary, so the completion cannot fall behind the
# binary. Job ids (vicregctl status|watch|logs|cancel|eval|report ID) come from
# `vicregctl [global flags] list -o json` with a 2-second deadline. Files and directories for the
# other values.
#
# Installed by `cmake --install` as share/bash-completion/completions/{vicregctl,vicreg_worker,vicreg_eval}
# (bash-completion loads it on the first TAB); or `source completions/vicreg.bash` in ~/.bashrc.

declare -gA _vicreg_help_cache 2>/dev/null || true

# The --help text of `$1 [$2]`.
_vicreg_help_text() {
  if [[ -n $2 ]]; then
    "$1" "$2" --help 2>/dev/null
  else
    "$1" --help 2>/dev/null
  fi
}

# Sets _vicreg_out to lines "opt NAME TAKES_VALUE CHOICES" (CHOICES comma-separated), "sub NAME",
# "pos NAME" from the --help of `$1 [$2]` (cached: called in this shell, not in $(...)).
_vicreg_help() {
  local key="$1|$2" text
  if [[ -z ${_vicreg_help_cache[$key]+set} ]]; then
    text=$(_vicreg_help_text "$1" "$2")
    _vicreg_help_cache[$key]=$(printf '%s\n' "$text" | awk '
      /^Options:/ { sec = "opt"; next }
      /^Subcommands:/ { sec = "sub"; next }
      /^Positionals:/ { sec = "pos"; next }
      /^[^ ]/ { sec = ""; next }
      sec == "opt" && /^  -/ {
        type = $2; val = (type ~ /^[A-Z][A-Z_]*([:=]|$)/) ? 1 : 0; ch = ""
        if (match(type, /\{[^}]*\}/)) ch = substr(type, RSTART + 1, RLENGTH - 2)
        n = split($1, names, ",")
        for (i = 1; i <= n; i++) print "opt", names[i], val, ch
        next
      }
      sec == "sub" && /^  [a-z]/ { print "sub", $1; next }
      sec == "pos" && /^  [a-z]/ { print "pos", $1; next }')
  fi
  _vicreg_out=${_vicreg_help_cache[$key]}
}

# Job ids of the coordinator the command line points at ($@: the global flags given so far).
_vicreg_job_ids() {
  local cmd=$1
  shift
  timeout 2 "$cmd" "$@" --timeout 2 list -o json --limit 200 2>/dev/null |
    grep -o '"id": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
}

_vicreg_complete() {
  local cmd=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} prev=""
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  local top sub="" subidx=0 i w _vicreg_out
  _vicreg_help "$cmd" ""
  top=$_vicreg_out
  # The subcommand: the first word that is not a flag or a flag's value.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [[ $w == -* ]]; then
      [[ $w != *=* ]] && awk -v o="$w" '$1 == "opt" && $2 == o && $3 == 1 { f = 1 } END { exit !f }' <<<"$top" &&
        ((i++))
      continue
    fi
    if awk -v s="$w" '$1 == "sub" && $2 == s { f = 1 } END { exit !f }' <<<"$top"; then
      sub=$w
      subidx=$i
      break
    fi
  done
  local info=$top
  if [[ -n $sub ]]; then
    _vicreg_help "$cmd" "$sub"
    info+=$'\n'$_vicreg_out
  fi

  # The value of a flag: its choices, a directory, or a file.
  local line
  line=$(awk -v o="$prev" '$1 == "opt" && $2 == o && $3 == 1 { print; exit }' <<<"$info")
  if [[ -n $line ]]; then
    local choices
    choices=$(awk '{ print $4 }' <<<"$line")
    case $prev in
      --device) choices=${choices:-cpu,cuda} ;;
      --log-level | --log_level) choices=${choices:-trace,debug,info,warn,error} ;;
    esac
    if [[ -n $choices ]]; then
      mapfile -t COMPREPLY < <(compgen -W "${choices//,/ }" -- "$cur")
    elif [[ $prev == *dir* || $prev == --workdir ]]; then
      mapfile -t COMPREPLY < <(compgen -d -- "$cur")
    else
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
    return 0
  fi

  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(awk '$1 == "opt" && !seen[$2]++ { print $2 }' <<<"$info")" -- "$cur")
    return 0
  fi
  if [[ -z $sub ]]; then
    local subs
    subs=$(awk '$1 == "sub" { print $2 }' <<<"$top")
    if [[ -n $subs ]]; then
      mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
      # vicreg_eval without a subcommand evaluates: its flags are offered too.
      [[ ${#COMPREPLY[@]} -gt 0 || $cmd == *vicregctl ]] && return 0
    fi
  fi
  if [[ $cmd == *vicregctl && -n $sub ]] && awk '$1 == "pos" && $2 == "id" { f = 1 } END { exit !f }' <<<"$info"; then
    mapfile -t COMPREPLY < <(compgen -W "$(_vicreg_job_ids "$cmd" "${COMP_WORDS[@]:1:subidx-1}")" -- "$cur")
    return 0
  fi
  mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  return 0
}

complete -o filenames -o bashdefault -F _vicreg_complete vicregctl vicreg_worker vicreg_eval
