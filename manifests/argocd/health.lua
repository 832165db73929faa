-- Argo CD health check for ModelDeployments (resource.customizations.health.modeldeploy.io_ModelDeployment
-- in argocd-cm; see docs/gitops.md). Healthy: the latest spec is rolled out and serving.
-- Suspended: a rollout waits for the user (spec.rollout.paused, or an indefinite pause step).
-- Degraded: Stalled (invalid spec, failed or rolled-back rollout, a child it may not take over).
-- Progressing: anything else, including a spec the operator has not observed yet.
local hs = { status = "Progressing", message = "waiting for the operator to observe the latest spec" }
if obj.status == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  return hs
end
local conditions = {}
for _, condition in ipairs(obj.status.conditions or {}) do
  conditions[condition.type] = condition
end
local stalled, ready = conditions["Stalled"], conditions["Ready"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or stalled.reason or "stalled"
  return hs
end
local rollout = obj.status.rollout
if rollout ~= nil and rollout.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = rollout.message or "paused by the user"
  return hs
end
if rollout ~= nil and rollout.phase == "Progressing" and obj.spec.rollout ~= nil and obj.spec.rollout.steps ~= nil then
  local step = obj.spec.rollout.steps[(rollout.step or 0) + 1]
  if step ~= nil and step.pause ~= nil and step.pause.duration == nil then
    hs.status = "Suspended"
    hs.message = "paused at weight " .. tostring(rollout.weight) .. "%: waiting for modeldeploy.io/promote"
    return hs
  end
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "ready"
  return hs
end
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
end
return hs
