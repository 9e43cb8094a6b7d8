#!/usr/bin/env bash
# Run `neurodeploy check` on each model file given after the options (pre-commit passes the staged
# files last). Options are the leading arguments that start with "-" and their values.
# Exit status: 0 when every model is spike-pure, otherwise the largest exit status seen (1 = not
# spike-pure, 2 = bad input).
set -u
opts=()
files=()
takes_value=" --arch --allow --input-domain --data --samples -T --time-steps --format -o --output "
while [ $# -gt 0 ]; do
  case "$1" in
    -*)
      opts+=("$1")
      if [[ "$takes_value" == *" $1 "* ]] && [ $# -gt 1 ]; then opts+=("$2"); shift; fi
      ;;
    *) files+=("$1") ;;
  esac
  shift
done
status=0
for f in "${files[@]}"; do
  echo "== neurodeploy check $f"
  neurodeploy check "$f" "${opts[@]}"
  rc=$?
  [ $rc -gt $status ] && status=$rc
done
exit $status
