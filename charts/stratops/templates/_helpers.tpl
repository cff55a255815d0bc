{{- define "stratops.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stratops.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stratops.labels" -}}
{{ include "stratops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stratops
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "stratops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stratops.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces served when not cluster-wide: the list, or the release namespace. */}}
{{- define "stratops.namespaces" -}}
{{- if .Values.watch.namespaces -}}
{{- toJson .Values.watch.namespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{- define "stratops.webhookSecretName" -}}
{{- if eq .Values.webhook.certificate.source "secret" -}}
{{- .Values.webhook.certificate.secretName -}}
{{- else -}}
{{- printf "%s-webhook-tls" (include "stratops.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The operator's rules, shared by the namespaced Roles and the cluster-wide ClusterRole. */}}
{{- define "stratops.rules" -}}
# Strategies, monitors, gates and incidents: watched and indexed (list, watch); kopf keeps its
# finalizer and progress annotations on them and the operator removes handled command
# annotations (patch). The operator never writes a spec.
- apiGroups: [stratops.io]
  resources: [strategies, monitors, gates, incidents]
  verbs: [get, list, watch, patch]
# The audit trail: hash-chained segments that only the operator writes (the chart gives nobody
# else create or update on them), never deleted by it.
- apiGroups: [stratops.io]
  resources: [auditsegments]
  verbs: [get, list, create, update]
# Incidents are opened by the operator (deterministic names: a second create is a 409).
- apiGroups: [stratops.io]
  resources: [incidents]
  verbs: [create]
# Status is the operator's: strategies by replace at a resourceVersion, the others by patch.
- apiGroups: [stratops.io]
  resources: [strategies/status, monitors/status, gates/status, incidents/status]
  verbs: [get, update, patch]
# deploy-strategy-pods exists only for the stratops-deployments admission policy: a holder of it
# creates only Deployments whose pods run as their strategy's own ServiceAccount, off the host.
- apiGroups: [stratops.io]
  resources: [strategies]
  verbs: [deploy-strategy-pods]
# Each strategy's Deployment (scale to 0 on a kill-switch, rollback to known-good, drift revert);
# deletion is left to the garbage collector through owner references.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update]
# The control and acknowledgement ConfigMaps of each strategy, and monitor baselines. patch
# adds no power to update; it is here because RBAC lets the operator grant in a strategy's Role
# (patch of its ack ConfigMap) only what it holds itself.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, patch]
# Each strategy's pod identity (lifecycle.manifests.identity): a ServiceAccount, and a Role and
# RoleBinding that grant it its own two ConfigMaps by name. Made again (delete, create) when one
# was made by someone else. The operator holds no escalate or bind: a Role it makes can grant
# only the ConfigMap rights above.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, delete]
# Strategy pods are observed (readiness, which pods must acknowledge, image verification); a
# foreign pod running under a halted strategy's name (not its Deployment's) is deleted.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Admission: whether a requester holds the stratops-only verbs (sign-for-others: a GitOps
# identity's signatures are dated in Git, not at admission).
- apiGroups: [authorization.k8s.io]
  resources: [localsubjectaccessreviews]
  verbs: [create]
{{- if .Values.ruler.enabled }}
# The Prometheus-ruler mode: each compilable monitor's rules, as a PrometheusRule it owns,
# written again when someone else edits it (watched), deleted when its check no longer compiles.
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusrules]
  verbs: [get, list, watch, create, update, delete]
{{- end }}
{{- if .Values.rbac.readSecrets }}
# A monitor's Prometheus bearer token (spec.source.prometheus.authSecretRef), and the labels of a
# Secret a strategy or monitor names (admission, metadata only): get by name only.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
  {{- with .Values.rbac.secretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* A label map as an equality selector: k=v,k2=v2 (sorted). */}}
{{- define "stratops.selector" -}}
{{- $parts := list -}}
{{- range $k, $v := . -}}{{- $parts = append $parts (printf "%s=%s" $k $v) -}}{{- end -}}
{{- join "," $parts -}}
{{- end -}}
