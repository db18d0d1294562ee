#!/bin/sh
# Local agent-doc mirrors: CLAUDE.md, AGENTS.md and AGENT.md as symlinks to README.md, which is
# the one root document. They are git-ignored; this script is idempotent and never clobbers a
# real file that says something README.md does not.
set -u
cd "$(git rev-parse --show-toplevel)" || exit 1
status=0
for doc in CLAUDE.md AGENTS.md AGENT.md; do
  if [ -L "$doc" ] && [ "$(readlink "$doc")" = README.md ]; then
    continue
  elif [ -L "$doc" ]; then
    ln -sfn README.md "$doc" && echo "relinked $doc -> README.md"
  elif [ -e "$doc" ] && cmp -s "$doc" README.md; then
    rm -f "$doc" && ln -s README.md "$doc" && echo "replaced $doc (same text as README.md) with a link"
  elif [ -e "$doc" ]; then
    echo "refusing to replace $doc: it is a real file that differs from README.md." >&2
    echo "  Move what it adds into README.md, delete it, and run this script again." >&2
    status=1
  else
    ln -s README.md "$doc" && echo "linked $doc -> README.md"
  fi
done
tracked=$(git ls-files -- CLAUDE.md AGENTS.md AGENT.md)
if [ -n "$tracked" ]; then
  echo "these mirrors are tracked by git and must not be: $tracked" >&2
  echo "  fix: git rm --cached $tracked" >&2
  status=1
fi
exit $status
