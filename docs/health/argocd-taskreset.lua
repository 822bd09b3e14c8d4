-- Argo CD health check for fdi.roma.io/TaskReset (kstatus conventions).
--
-- Argo CD runs this with the live object in `obj` and expects {status = ..., message = ...}
-- with status Healthy | Progressing | Degraded | Suspended. The rules, in order:
--   1. no status, or status.observedGeneration behind metadata.generation -> Progressing
--      (the controller has not acted on the current spec yet);
--   2. conditions whose own observedGeneration is behind metadata.generation are ignored;
--   3. Ready=False with reason Suspended (or phase Suspended) -> Suspended;
--   4. Stalled=True -> Degraded (a human is needed: Failed, Unknown, Expired, InvalidSpec);
--   5. Ready=True -> Healthy (ResetSucceeded, AlreadyExecuted);
--   6. Ready=False -> Degraded;
--   7. Reconciling=True or Ready=Unknown -> Progressing (Pending, Resetting, Retrying);
--   8. no usable condition: the phase decides the same way.
-- Install: docs/gitops.md (argocd-cm key resource.customizations.health.fdi.roma.io_TaskReset).

local hs = { status = "Progressing", message = "Waiting for the controller" }

local function describe(reason, message)
  local text = reason or ""
  if message ~= nil and message ~= "" then
    if text ~= "" then
      text = text .. ": " .. message
    else
      text = message
    end
  end
  return text
end

if obj == nil or obj.status == nil then
  hs.message = "Waiting for the controller to pick up the TaskReset"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
local observed = status.observedGeneration

if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the controller to observe generation " .. tostring(generation)
  return hs
end

-- Current conditions only: a condition written for an older generation says nothing now.
local conditions = {}
if type(status.conditions) == "table" then
  for _, c in ipairs(status.conditions) do
    if type(c) == "table" and c.type ~= nil then
      local current = generation == nil or c.observedGeneration == nil
        or c.observedGeneration >= generation
      if current then
        conditions[c.type] = c
      end
    end
  end
end

local ready = conditions["Ready"]
local stalled = conditions["Stalled"]
local reconciling = conditions["Reconciling"]
local phase = status.phase

if (ready ~= nil and ready.status == "False" and ready.reason == "Suspended")
    or phase == "Suspended" then
  hs.status = "Suspended"
  if ready ~= nil then
    hs.message = describe(ready.reason, ready.message)
  else
    hs.message = "Suspended: spec.suspend is true"
  end
  return hs
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled.reason, stalled.message)
  return hs
end

if ready ~= nil then
  if ready.status == "True" then
    hs.status = "Healthy"
  elseif ready.status == "False" then
    hs.status = "Degraded"
  else
    hs.status = "Progressing"
  end
  hs.message = describe(ready.reason, ready.message)
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling.reason, reconciling.message)
  return hs
end

-- No usable condition: fall back on the phase.
local message = status.message or status.errorMessage or ""
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Unknown" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
if phase ~= nil then
  hs.message = describe(phase, message)
end
return hs
