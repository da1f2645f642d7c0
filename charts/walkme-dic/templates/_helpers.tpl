{{/* Chart name, overridable by nameOverride. */}}
{{- define "walkme-dic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or fullnameOverride; at most 63 characters. */}}
{{- define "walkme-dic.fullname" -}}
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

{{- define "walkme-dic.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels on every object. */}}
{{- define "walkme-dic.labels" -}}
helm.sh/chart: {{ include "walkme-dic.chart" . }}
{{ include "walkme-dic.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: walkme-dic
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels the Deployment selects its Pods by; never change them after install. */}}
{{- define "walkme-dic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "walkme-dic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "walkme-dic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "walkme-dic.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest] from an image block, falling back to a default block and appVersion. */}}
{{- define "walkme-dic.imageRef" -}}
{{- $img := index . 0 }}{{- $fallback := index . 1 }}{{- $appVersion := index . 2 }}
{{- $repository := default $fallback.repository $img.repository }}
{{- $tag := default (default $appVersion $fallback.tag) $img.tag }}
{{- $digest := default $fallback.digest $img.digest }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{- define "walkme-dic.image" -}}
{{- include "walkme-dic.imageRef" (list .Values.image .Values.image .Chart.AppVersion) }}
{{- end }}

{{- define "walkme-dic.jobImage" -}}
{{- include "walkme-dic.imageRef" (list .Values.jobImage .Values.image .Chart.AppVersion) }}
{{- end }}

{{/* Rules on namespaced resources: exactly the verbs the operator and kopf use (tests/e2e/test_rbac.py
compares them with the apiserver's audit log and removes each in turn). */}}
{{- define "walkme-dic.namespacedRules" -}}
# Watched custom resources; kopf lists and watches them (the operator reads from its watch cache, never GETs).
- apiGroups: ["integrations.walkme.io"]
  resources: ["connections", "integrations"]
  verbs: ["list", "watch"]
# Conditions and run history are written through the status subresource only.
- apiGroups: ["integrations.walkme.io"]
  resources: ["connections/status", "integrations/status"]
  verbs: ["patch"]
# One sync Job per run: created, watched, deleted when its run leaves the Integration's runHistoryLimit.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
# The run's result is the sync Pod's termination message.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Secrets are read by name only (a Connection's credentials to probe it; the metadata of each on every
# resync pass, to notice a change), never listed or watched: no other Secret body reaches the operator.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Events on Connections and Integrations (core/v1 Events, posted by the operator's client and kopf).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Cluster-scoped reads kopf needs (kopf 1.45, _core/reactor/observation.py): it always lists and
watches CRDs to follow its resources; it lists namespaces only when serving named namespaces,
never in cluster-wide mode. API discovery (/api, /apis) is open to every authenticated user.
*/}}
{{- define "walkme-dic.clusterReadRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}
