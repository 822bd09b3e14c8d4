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
  verbs: ["get", "list", "watch"]
# Claim and record each reset in .status.
- apiGroups: ["fdi.roma.io"]
  resources: ["taskresets/status"]
  verbs: ["get", "patch", "update"]
# Read credentials (spec.credentialsSecretRef and the default Secret). Never list or watch.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# The execution ledger: ConfigMaps taskreset-ledger-* in each TaskReset namespace.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# Events on TaskResets; patch aggregates repeated ones.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
