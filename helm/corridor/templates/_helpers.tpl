{{/*
Shared pieces of the corridor chart: names, labels, the image, the security context every
pod and container gets, and the addresses the components find each other at.
*/}}

{{/* Base name of every object: the release name, unless it lacks "corridor". */}}
{{- define "corridor.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects, e.g. corridor-gateway. Takes (dict "root" $ "component" "gateway"). */}}
{{- define "corridor.componentName" -}}
{{- printf "%s-%s" (include "corridor.fullname" .root) .component -}}
{{- end -}}

{{/* Labels every object carries, but the instance label. */}}
{{- define "corridor.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: corridor
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Labels of objects that belong to no one component (CRDs, the ServiceMonitor). */}}
{{- define "corridor.labels" -}}
{{ include "corridor.commonLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels that pick a component's pods (Deployment selectors, Services, PDBs, policies).
The gateway's also form the controller's --gateway-selector. Takes (dict "root" $ "component" "gateway").
*/}}
{{- define "corridor.selectorLabels" -}}
app.kubernetes.io/name: corridor-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* All labels of a component's objects. Takes (dict "root" $ "component" "gateway"). */}}
{{- define "corridor.componentLabels" -}}
{{ include "corridor.commonLabels" .root }}
{{ include "corridor.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Labels of a component's pods: no chart version, so that a chart upgrade which changes
nothing in the pods restarts none of them. Takes (dict "root" $ "component" "gateway").
*/}}
{{- define "corridor.podLabels" -}}
{{ include "corridor.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: corridor
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end -}}

{{/* The controller's --gateway-selector: the gateway's selector labels as k=v,k=v. */}}
{{- define "corridor.gatewaySelector" -}}
{{- $labels := include "corridor.selectorLabels" (dict "root" . "component" "gateway") | fromYaml -}}
{{- $pairs := list -}}
{{- range $key := keys $labels | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%s" $key (index $labels $key)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* The image every container runs. */}}
{{- define "corridor.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The controller's xDS address as the gateway and dns pods reach it: the controller Service's
ClusterIP from the service environment variable the kubelet sets (the Service is created
before any Deployment). Not a DNS name on purpose: dns pods resolve through the node's
resolv.conf, which knows no cluster names, and in stub or replace mode cluster DNS
itself depends on corridor-dns, which depends on this connection.
*/}}
{{- define "corridor.xdsAddress" -}}
{{- $service := include "corridor.componentName" (dict "root" . "component" "controller") -}}
{{- printf "$(%s_SERVICE_HOST):%d" ($service | upper | replace "-" "_") (int .Values.controller.xdsPort) -}}
{{- end -}}

{{/* Pod-level security context: restricted Pod Security Standard. */}}
{{- define "corridor.podSecurityContext" -}}
runAsNonRoot: true
# The distroless "nonroot" user of the image.
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context: no root, no privileges, nothing writable but /tmp. */}}
{{- define "corridor.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* A writable /tmp on the read-only root filesystem: the mount, then the volume. */}}
{{- define "corridor.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}
{{- define "corridor.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/*
Pod anti-affinity between replicas of one component on one node.
Takes (dict "root" $ "component" "gateway" "mode" "soft|hard|none").
*/}}
{{- define "corridor.podAntiAffinity" -}}
{{- if eq .mode "soft" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "corridor.selectorLabels" . | nindent 12 }}
{{- else if eq .mode "hard" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "corridor.selectorLabels" . | nindent 10 }}
{{- end -}}
{{- end -}}

{{/* Scheduling fields shared by the Deployments. Takes (dict "root" $ "component" "gateway" "values" .Values.gateway). */}}
{{- define "corridor.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := include "corridor.podAntiAffinity" (dict "root" .root "component" .component "mode" .values.podAntiAffinity) }}
{{- if $affinity }}
affinity:
  {{- $affinity | nindent 2 }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* The CoreDNS ConfigMap as the controller's flag wants it: namespace/name. */}}
{{- define "corridor.corednsConfigMap" -}}
{{- printf "%s/%s" .Values.dns.coredns.namespace .Values.dns.coredns.configMap -}}
{{- end -}}
