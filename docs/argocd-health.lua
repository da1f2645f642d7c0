-- Argo CD custom health check for walkme-dic's Connection and Integration
-- (integrations.walkme.io/v1alpha1). It reads the kstatus conditions the operator writes,
-- in kstatus order, so Argo CD, Flux and `kubectl wait` agree:
--   status.observedGeneration < metadata.generation -> Progressing (the operator has not seen the change)
--   Stalled=True                                   -> Degraded    (the spec or a Secret must change)
--   Reconciling=True                               -> Progressing (a run, or waiting for a Connection)
--   Ready=True (reason Suspended)                  -> Suspended   (Integration.spec.suspend)
--   Ready=True                                     -> Healthy
--   Ready=False                                    -> Degraded    (e.g. the last run failed, a probe failed)
--   otherwise                                      -> Progressing (no status yet)
-- Install: see docs/health-checks.md (argocd-cm resource.customizations.health.*).
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    local reason = c.reason or ""
    if reason ~= "" and string.lower(string.sub(c.message, 1, #reason)) ~= string.lower(reason) then
      return reason .. ": " .. c.message
    end
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the walkme-dic operator to report status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status.conditions, "Stalled")
local reconciling = condition(status.conditions, "Reconciling")
local ready = condition(status.conditions, "Ready")

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "Reconciling")
  return hs
end
if ready ~= nil and ready.status == "True" then
  if ready.reason == "Suspended" then
    hs.status = "Suspended"
  else
    hs.status = "Healthy"
  end
  hs.message = describe(ready, "Ready")
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
  return hs
end
hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the Ready condition")
return hs
