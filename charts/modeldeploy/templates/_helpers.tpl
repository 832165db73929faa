{{/* Name of the operator's objects. */}}
{{- define "modeldeploy.name" -}}modeldeploy-operator{{- end -}}

{{/* Labels of every object the chart makes. */}}
{{- define "modeldeploy.labels" -}}
app.kubernetes.io/name: modeldeploy
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* What selects the operator's pods. */}}
{{- define "modeldeploy.selector" -}}
app.kubernetes.io/name: modeldeploy
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The rules the operator needs in a namespace it watches (namespaced resources). */}}
{{- define "modeldeploy.namespacedRules" -}}
# The ModelDeployments: listed and watched (read from that cache, never one by one), only
# their status written (never their spec). patch lets Kopf remove the finalizer that
# operators before 0.2 put on objects with a rollout.
- apiGroups: [modeldeploy.io]
  resources: [modeldeployments]
  verbs: [list, watch, patch]
- apiGroups: [modeldeploy.io]
  resources: [modeldeployments/status]
  verbs: [patch]
# BatchPredictions: read from the watch cache, only their status written.
- apiGroups: [modeldeploy.io]
  resources: [batchpredictions]
  verbs: [list, watch]
- apiGroups: [modeldeploy.io]
  resources: [batchpredictions/status]
  verbs: [patch]
# The children, applied server-side (patch; create and get for the first one) and pruned.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# The gateway-api and istio traffic providers' routes. Without their CRDs a list answers
# 404, which the operator reads as "none to prune".
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.istio.io]
  resources: [virtualservices]
  verbs: [get, list, watch, create, patch, delete]
# Pods are listed and watched (their states tell why a model is not serving); router pods
# are annotated with their new route, which makes the kubelet refresh their config at once.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# spec.model.registry.secretName: the MLflow credentials a models:/ URI is resolved with,
# read by name when the registry is asked (never listed or watched).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# spec.monitoring.retraining.job: the retraining Jobs, applied server-side once per cooldown
# (patch; create for the new one); a BatchPrediction's plan and Indexed Jobs, applied,
# patched (parallelism, suspend) and deleted when superseded or past the history limits.
# Watched (managed-by label) for their outcome.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}

{{/* Cluster-scoped reads Kopf makes at start (no write). */}}
{{- define "modeldeploy.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end -}}
