-- Tests of argocd-taskreset.lua against sample TaskReset objects.
-- Run: lua5.4 docs/health/argocd-taskreset_test.lua   (exit status 1 on any failure)
-- Argo CD embeds Lua 5.1 (gopher-lua); the check and these tests stick to Lua 5.1 syntax.

local here = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local script = here .. "/argocd-taskreset.lua"

-- Runs the health check the way Argo CD does: a fresh chunk with `obj` as a global.
local function health(object)
  local env = setmetatable({ obj = object }, { __index = _G })
  local chunk, err
  if setfenv ~= nil then -- Lua 5.1
    chunk, err = loadfile(script)
    if chunk ~= nil then setfenv(chunk, env) end
  else
    chunk, err = loadfile(script, "t", env)
  end
  if chunk == nil then error("cannot load " .. script .. ": " .. tostring(err)) end
  return chunk()
end

local function cond(type_, status, reason, message, generation)
  return {
    type = type_, status = status, reason = reason, message = message or "",
    observedGeneration = generation, lastTransitionTime = "2026-11-29T10:00:00Z",
  }
end

-- A TaskReset at `generation` with the given status.
local function tr(generation, status, spec)
  return {
    apiVersion = "fdi.roma.io/v1alpha1", kind = "TaskReset",
    metadata = { name = "orders-replay", namespace = "data", generation = generation },
    spec = spec or { projectId = "p", instanceId = "i", taskId = "t" },
    status = status,
  }
end

local cases = {
  { "new object, no status yet", tr(1, nil), "Progressing", "Waiting for the controller" },
  { "empty status", tr(1, {}), "Progressing", "observe generation 1" },
  { "new object, the CRD's default status", tr(1, { observedGeneration = -1 }),
    "Progressing", "observe generation 1" },
  { "status for an older generation", tr(3, {
      observedGeneration = 2, phase = "Succeeded",
      conditions = { cond("Ready", "True", "ResetSucceeded", "Reset Success", 2) } }),
    "Progressing", "observe generation 3" },
  { "succeeded", tr(2, {
      observedGeneration = 2, phase = "Succeeded", message = "Reset Success",
      conditions = { cond("Ready", "True", "ResetSucceeded", "Reset Success", 2) } }),
    "Healthy", "ResetSucceeded: Reset Success" },
  { "already executed (ledger)", tr(1, {
      observedGeneration = 1, phase = "Succeeded",
      conditions = { cond("Ready", "True", "AlreadyExecuted", "executed at 2026-11-28T09:00:00Z", 1) } }),
    "Healthy", "AlreadyExecuted" },
  { "pending: credentials not found", tr(1, {
      observedGeneration = 1, phase = "Pending",
      conditions = {
        cond("Ready", "Unknown", "CredentialsNotFound", "secret data/roma-credentials not found", 1),
        cond("Reconciling", "True", "CredentialsNotFound", "waiting for credentials", 1) } }),
    "Progressing", "CredentialsNotFound" },
  { "pending: credentials rejected", tr(1, {
      observedGeneration = 1, phase = "Pending",
      conditions = {
        cond("Ready", "Unknown", "CredentialsRejected", "APIGW.0301", 1),
        cond("Reconciling", "True", "CredentialsRejected", "retrying in 5m", 1) } }),
    "Progressing", "CredentialsRejected" },
  { "resetting", tr(1, {
      observedGeneration = 1, phase = "Resetting", attempts = 1,
      conditions = {
        cond("Ready", "Unknown", "Resetting", "calling ROMA", 1),
        cond("Reconciling", "True", "Resetting", "calling ROMA", 1) } }),
    "Progressing", "Resetting" },
  { "retrying", tr(4, {
      observedGeneration = 4, phase = "Retrying", attempts = 2,
      conditions = {
        cond("Ready", "Unknown", "RetryScheduled", "429 APIGW.0308, next attempt at ...", 4),
        cond("Reconciling", "True", "RetryScheduled", "", 4) } }),
    "Progressing", "RetryScheduled" },
  { "failed: rejected by the service", tr(1, {
      observedGeneration = 1, phase = "Failed", errorCode = "FDI.3150", httpStatus = 400,
      conditions = {
        cond("Ready", "False", "ResetFailed", "FDI.3150: The task list is empty.", 1),
        cond("Stalled", "True", "ResetFailed", "FDI.3150: The task list is empty.", 1) } }),
    "Degraded", "ResetFailed: FDI.3150: The task list is empty." },
  { "failed: retries exhausted", tr(1, {
      observedGeneration = 1, phase = "Failed",
      conditions = {
        cond("Ready", "False", "RetriesExhausted", "5 attempts", 1),
        cond("Stalled", "True", "RetriesExhausted", "5 attempts", 1) } }),
    "Degraded", "RetriesExhausted" },
  { "unknown outcome", tr(1, {
      observedGeneration = 1, phase = "Unknown",
      conditions = {
        cond("Ready", "False", "OutcomeUnknown", "timeout after the request was sent", 1),
        cond("Stalled", "True", "OutcomeUnknown", "check the task in the ROMA console", 1) } }),
    "Degraded", "OutcomeUnknown: check the task" },
  { "interrupted", tr(1, {
      observedGeneration = 1, phase = "Unknown",
      conditions = {
        cond("Ready", "False", "Interrupted", "controller died mid-call", 1),
        cond("Stalled", "True", "Interrupted", "controller died mid-call", 1) } }),
    "Degraded", "Interrupted" },
  { "expired (notAfter)", tr(1, {
      observedGeneration = 1, phase = "Failed",
      conditions = {
        cond("Ready", "False", "Expired", "notAfter 2026-01-01T00:00:00Z passed", 1),
        cond("Stalled", "True", "Expired", "notAfter passed", 1) } }),
    "Degraded", "Expired" },
  { "invalid spec", tr(1, {
      observedGeneration = 1, phase = "Failed",
      conditions = {
        cond("Ready", "False", "InvalidSpec", "endpoint not allowed", 1),
        cond("Stalled", "True", "InvalidSpec", "endpoint not allowed", 1) } }),
    "Degraded", "InvalidSpec" },
  { "Ready=False without Stalled is still Degraded", tr(1, {
      observedGeneration = 1, phase = "Failed",
      conditions = { cond("Ready", "False", "ResetFailed", "FDI.3021", 1) } }),
    "Degraded", "ResetFailed" },
  { "suspended", tr(2, {
      observedGeneration = 2, phase = "Suspended",
      conditions = { cond("Ready", "False", "Suspended", "spec.suspend is true", 2) } },
      { projectId = "p", instanceId = "i", taskId = "t", suspend = true }),
    "Suspended", "Suspended" },
  { "suspended by phase only", tr(2, { observedGeneration = 2, phase = "Suspended" }),
    "Suspended", "spec.suspend" },
  { "suspend just set, not observed yet", tr(3, {
      observedGeneration = 2, phase = "Succeeded",
      conditions = { cond("Ready", "True", "ResetSucceeded", "Reset Success", 2) } },
      { projectId = "p", instanceId = "i", taskId = "t", suspend = true }),
    "Progressing", "generation 3" },
  { "stale Stalled condition ignored, current Ready wins", tr(2, {
      observedGeneration = 2, phase = "Succeeded",
      conditions = {
        cond("Stalled", "True", "ResetFailed", "old failure", 1),
        cond("Ready", "True", "ResetSucceeded", "Reset Success", 2) } }),
    "Healthy", "ResetSucceeded" },
  { "all conditions stale: phase fallback", tr(2, {
      observedGeneration = 2, phase = "Resetting",
      conditions = { cond("Ready", "True", "ResetSucceeded", "old", 1) } }),
    "Progressing", "Resetting" },
  { "conditions without observedGeneration are used", tr(2, {
      observedGeneration = 2, phase = "Succeeded",
      conditions = { cond("Ready", "True", "ResetSucceeded", "Reset Success", nil) } }),
    "Healthy", "ResetSucceeded" },
  { "phase fallback: Succeeded", tr(1, {
      observedGeneration = 1, phase = "Succeeded", message = "Reset Success" }),
    "Healthy", "Succeeded: Reset Success" },
  { "phase fallback: Failed", tr(1, {
      observedGeneration = 1, phase = "Failed", errorMessage = "The task list is empty." }),
    "Degraded", "Failed: The task list is empty." },
  { "phase fallback: Unknown", tr(1, { observedGeneration = 1, phase = "Unknown" }),
    "Degraded", "Unknown" },
  { "phase fallback: Pending", tr(1, { observedGeneration = 1, phase = "Pending" }),
    "Progressing", "Pending" },
  { "no generation in metadata", {
      metadata = { name = "x" },
      status = { phase = "Succeeded",
        conditions = { cond("Ready", "True", "ResetSucceeded", "Reset Success", 5) } } },
    "Healthy", "ResetSucceeded" },
  { "malformed conditions are skipped", tr(1, {
      observedGeneration = 1, phase = "Retrying",
      conditions = { "garbage", { status = "True" }, cond("Reconciling", "True", "RetryScheduled", "", 1) } }),
    "Progressing", "RetryScheduled" },
  { "status observed ahead of metadata (cache lag)", tr(1, {
      observedGeneration = 2, phase = "Succeeded",
      conditions = { cond("Ready", "True", "ResetSucceeded", "Reset Success", 2) } }),
    "Healthy", "ResetSucceeded" },
}

local passed, failed = 0, 0
for _, case in ipairs(cases) do
  local name, object, want_status, want_message = case[1], case[2], case[3], case[4]
  local ok, result = pcall(health, object)
  local problem = nil
  if not ok then
    problem = "error: " .. tostring(result)
  elseif type(result) ~= "table" then
    problem = "returned " .. type(result)
  elseif result.status ~= want_status then
    problem = "status " .. tostring(result.status) .. ", want " .. want_status
      .. " (message: " .. tostring(result.message) .. ")"
  elseif type(result.message) ~= "string"
      or string.find(result.message, want_message, 1, true) == nil then
    problem = "message " .. string.format("%q", tostring(result.message))
      .. " does not contain " .. string.format("%q", want_message)
  end
  if problem == nil then
    passed = passed + 1
    print("ok   " .. name)
  else
    failed = failed + 1
    print("FAIL " .. name .. ": " .. problem)
  end
end

print(string.format("%d passed, %d failed", passed, failed))
if failed > 0 or passed == 0 then os.exit(1) end
