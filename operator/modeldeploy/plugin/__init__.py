"""`kubectl modeldeploy`: list, inspect and steer ModelDeployment rollouts from a shell.

main.py   arguments, the API calls (through k8s/plugin.py), errors as one line, --watch
view.py   PURE: what `get`, `status`, `history` and `where` print, from the objects as read
actions.py PURE: the merge patch each command writes, or why it writes none

Every command writes what a GitOps repo would: `spec.rollout.paused`/`abort`, the
`modeldeploy.io/promote`, `promote-full` and `retry` annotations, and for `undo`
`spec.model`/`spec.runtime`; never status (docs/plugin.md).
"""
