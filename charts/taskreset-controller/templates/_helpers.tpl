{{/* The chart name, overridable. */}}
{{- define "taskreset-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full resource name: <release>-<chart>, or the release name when it contains the chart name. */}}
{{- define "taskreset-controller.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Selector labels: stable across upgrades. */}}
{{- define "taskreset-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskreset-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Common labels. */}}
{{- define "taskreset-controller.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "taskreset-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: taskreset-controller
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The service account name. */}}
{{- define "taskreset-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "taskreset-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "taskreset-controller.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The namespace the controller watches: "" = all. Namespace-scoped RBAC forces one. */}}
{{- define "taskreset-controller.watchNamespace" -}}
{{- if .Values.watchNamespace }}
{{- .Values.watchNamespace }}
{{- else if eq .Values.rbac.scope "namespace" }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The Lease name. */}}
{{- define "taskreset-controller.leaseName" -}}
{{- default (include "taskreset-controller.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The default credentials Secret namespace. */}}
{{- define "taskreset-controller.defaultSecretNamespace" -}}
{{- default .Release.Namespace .Values.defaultCredentials.secretNamespace }}
{{- end }}

{{/* RBAC rules the controller needs where TaskResets live; nothing more. */}}
{{- define "taskreset-controller.workRules" -}}
# Watch the objects it reconciles.
- apiGroups: ["fdi.roma.io"]
  resources: ["taskresets"]
  verbs: ["list", "watch"]
# Claim and record each reset in .status (update with the resourceVersion as precondition;
# get re-reads it before the result write).
- apiGroups: ["fdi.roma.io"]
  resources: ["taskresets/status"]
  verbs: ["get", "update"]
# Read credentials (spec.credentialsSecretRef and the default Secret). Never list or watch.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# The execution ledger: the 16 ConfigMaps taskreset-ledger-0 .. -f in each TaskReset namespace
# (read, created, updated; never listed, watched, patched or deleted). Create cannot be
# limited by name.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["taskreset-ledger-0", "taskreset-ledger-1", "taskreset-ledger-2", "taskreset-ledger-3", "taskreset-ledger-4", "taskreset-ledger-5", "taskreset-ledger-6", "taskreset-ledger-7", "taskreset-ledger-8", "taskreset-ledger-9", "taskreset-ledger-a", "taskreset-ledger-b", "taskreset-ledger-c", "taskreset-ledger-d", "taskreset-ledger-e", "taskreset-ledger-f"]
  verbs: ["get", "update"]
# Events on TaskResets; patch aggregates repeated ones.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
