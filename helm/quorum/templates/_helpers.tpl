{{/*
Names, labels and the pieces shared by several templates.
*/}}

{{/* The chart name (nameOverride wins). */}}
{{- define "quorum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The resource name prefix. KubeRay derives pod, cluster and Service names from the RayService name
(adding suffixes such as "-raycluster-xxxxx-head-xxxxx"), so it is kept to 40 characters.
*/}}
{{- define "quorum.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "quorum.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the release's pods. */}}
{{- define "quorum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quorum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "quorum.labels" -}}
helm.sh/chart: {{ include "quorum.chart" . }}
{{ include "quorum.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quorum
{{- end -}}

{{/* Selector of the head pod, where the gRPC gateway listens. */}}
{{- define "quorum.headSelectorLabels" -}}
{{ include "quorum.selectorLabels" . }}
app.kubernetes.io/component: ray-head
{{- end -}}

{{/*
The image reference: repository@digest, or repository:tag. The tag defaults to
<appVersion>-<profile>, the tag `make image ENGINE=<profile>` gives the image (e.g. quorum:0.1.0-cpu).
*/}}
{{- define "quorum.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "%s-%s" .Chart.AppVersion .Values.profile) .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
GPUs one replica of a model needs, and so the GPUs of each pod of its worker group:
engine.tensor_parallel_size × engine.pipeline_parallel_size. Argument: one quorum.models entry.
*/}}
{{- define "quorum.gpusPerReplica" -}}
{{- $engine := .engine | default dict -}}
{{- mul (int (default 1 $engine.tensor_parallel_size)) (int (default 1 $engine.pipeline_parallel_size)) -}}
{{- end -}}

{{/* The worker group name of a model: "gpu-" + the model id as a DNS label. Argument: a models entry. */}}
{{- define "quorum.workerGroupName" -}}
{{- printf "gpu-%s" (regexReplaceAll "[^a-z0-9-]+" (lower .id) "-") | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* The volume name of a PVC claim (a DNS label). Argument: the claim name. */}}
{{- define "quorum.pvcVolumeName" -}}
{{- printf "models-%s" (regexReplaceAll "[^a-z0-9-]+" (lower .) "-") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The PVC mount path of a claim. Argument: the claim name. */}}
{{- define "quorum.pvcMountPath" -}}
{{- printf "/models/%s" . -}}
{{- end -}}

{{/*
QuorumConfig.models[].source of a models entry: exactly one of source.hub (a hub id),
source.pvc ({claimName, path}: /models/<claimName>/<path>) or source.embedded (embedded:<name>).
*/}}
{{- define "quorum.modelSource" -}}
{{- $src := .source | default dict -}}
{{- $set := 0 -}}
{{- range $key := list "hub" "pvc" "embedded" -}}
{{- if index $src $key }}{{ $set = add1 $set }}{{ end -}}
{{- end -}}
{{- if ne (int $set) 1 -}}
{{- fail (printf "quorum.models[id=%s].source: set exactly one of hub, pvc or embedded" .id) -}}
{{- end -}}
{{- if $src.hub -}}
{{- $src.hub -}}
{{- else if $src.embedded -}}
{{- printf "embedded:%s" $src.embedded -}}
{{- else -}}
{{- $path := trimAll "/" ($src.pvc.path | default "") -}}
{{- if $path -}}
{{- printf "%s/%s" (include "quorum.pvcMountPath" $src.pvc.claimName) $path -}}
{{- else -}}
{{- include "quorum.pvcMountPath" $src.pvc.claimName -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Distinct PVC claim names used by the models, one per line. */}}
{{- define "quorum.pvcClaims" -}}
{{- $claims := list -}}
{{- range $m := .Values.quorum.models -}}
{{- if and $m.source $m.source.pvc -}}
{{- $claims = append $claims $m.source.pvc.claimName -}}
{{- end -}}
{{- end -}}
{{- $claims | uniq | join "\n" -}}
{{- end -}}

{{/* Secret names. */}}
{{- define "quorum.authSecretName" -}}
{{- default (printf "%s-auth" (include "quorum.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}
{{- define "quorum.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "quorum.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}
{{- define "quorum.hubTokenSecretName" -}}
{{- default (printf "%s-hub-token" (include "quorum.fullname" .)) .Values.hub.token.existingSecret -}}
{{- end -}}
{{/* "true" when a Hugging Face token is configured. */}}
{{- define "quorum.hubTokenEnabled" -}}
{{- if or .Values.hub.token.existingSecret .Values.hub.token.value -}}true{{- end -}}
{{- end -}}

{{/* Fixed in-pod paths (the quorum config references them). */}}
{{- define "quorum.authDir" -}}/etc/quorum/auth{{- end -}}
{{- define "quorum.tlsDir" -}}/etc/quorum/tls{{- end -}}
{{- define "quorum.hubTokenDir" -}}/etc/quorum/hub{{- end -}}
{{- define "quorum.grpcPort" -}}50051{{- end -}}
{{- define "quorum.httpPort" -}}8000{{- end -}}

{{/*
The quorum configuration (QuorumConfig, cluster/config.py) as YAML: models with their sources
resolved, the gateway bound to 0.0.0.0:50051 and its HTTP endpoint to 0.0.0.0:8000 (plus auth/TLS
file paths when enabled), telemetry and the model cache directory.
*/}}
{{- define "quorum.config" -}}
{{- $root := . -}}
{{- if and (eq .Values.profile "cpu") .Values.ray.autoscaler.enabled -}}
{{- fail "ray.autoscaler.enabled: the cpu profile has no worker group to scale" -}}
{{- end -}}
{{- $models := list -}}
{{- range $m := .Values.quorum.models -}}
{{- $entry := dict "id" $m.id "source" (include "quorum.modelSource" $m) -}}
{{- if $m.tokenizer -}}{{- $_ := set $entry "tokenizer" $m.tokenizer -}}{{- end -}}
{{- if $m.engine -}}{{- $_ := set $entry "engine" $m.engine -}}{{- end -}}
{{- $deployment := deepCopy ($m.deployment | default dict) -}}
{{- if eq $root.Values.profile "cpu" -}}
{{- $_ := set $deployment "num_gpus" 0 -}}
{{- else if not (hasKey $deployment "num_gpus") -}}
{{- /* One replica owns all GPUs of its worker pod. */ -}}
{{- $_ := set $deployment "num_gpus" (int (include "quorum.gpusPerReplica" $m)) -}}
{{- end -}}
{{- $_ := set $entry "deployment" $deployment -}}
{{- if and $m.serveAutoscaling (not $root.Values.ray.autoscaler.enabled) (eq $root.Values.profile "gpu") -}}
{{- fail (printf "quorum.models[id=%s].serveAutoscaling needs ray.autoscaler.enabled=true (worker pods follow the replicas)" $m.id) -}}
{{- end -}}
{{- $models = append $models $entry -}}
{{- end -}}
{{- $fixed := dict "host" "0.0.0.0" "grpc_port" (int (include "quorum.grpcPort" .)) "http_host" "0.0.0.0" "http_port" (int (include "quorum.httpPort" .)) -}}
{{- $gateway := merge $fixed (deepCopy .Values.quorum.gateway) -}}
{{- if .Values.auth.enabled -}}
{{- $_ := set $gateway "auth_tokens_file" (printf "%s/tokens" (include "quorum.authDir" .)) -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- $_ := set $gateway "tls_cert_file" (printf "%s/tls.crt" (include "quorum.tlsDir" .)) -}}
{{- $_ := set $gateway "tls_key_file" (printf "%s/tls.key" (include "quorum.tlsDir" .)) -}}
{{- if .Values.tls.clientAuth -}}
{{- $_ := set $gateway "tls_client_ca_file" (printf "%s/ca.crt" (include "quorum.tlsDir" .)) -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "models" $models "gateway" $gateway "telemetry" .Values.quorum.telemetry "model_cache_dir" .Values.quorum.model_cache_dir) -}}
{{- end -}}

{{/*
The RayService's serveConfigV2: one Serve application built by quorum's application builder from
the inline quorum config, mounted at "/" on Serve's HTTP proxy (0.0.0.0:8000), which serves the
OpenAI-compatible API (/v1/...) through the gateway deployment. The deployment overrides pin the gateway to the head pod (through the
quorum_gateway resource only the head advertises) and turn on Serve autoscaling per model.
*/}}
{{- define "quorum.serveConfig" -}}
{{- $config := include "quorum.config" . | fromYaml -}}
{{- $gateway := dict "name" "gateway" "ray_actor_options" (dict "num_cpus" 0 "resources" (dict "quorum_gateway" 0.001)) -}}
{{- $deployments := list $gateway -}}
{{- range $m := .Values.quorum.models -}}
{{- if $m.serveAutoscaling -}}
{{- $deployments = append $deployments (dict "name" (printf "llm-%s" $m.id) "num_replicas" "auto" "autoscaling_config" $m.serveAutoscaling) -}}
{{- end -}}
{{- end -}}
{{- $app := dict "name" "quorum" "route_prefix" "/" "import_path" "quorum.services.app:app_builder" "args" (dict "config" $config) "deployments" $deployments -}}
{{- $http := dict "host" "0.0.0.0" "port" (int (include "quorum.httpPort" .)) -}}
{{- toYaml (dict "http_options" $http "applications" (list $app)) -}}
{{- end -}}

{{/*
Environment of every Ray container. Argument: the root context.
*/}}
{{- define "quorum.containerEnv" -}}
- name: TRITON_CACHE_DIR
  value: /home/ray/.cache/triton
{{- if include "quorum.hubTokenEnabled" . }}
{{- if .Values.hub.token.asFile }}
- name: HF_TOKEN_PATH
  value: {{ printf "%s/%s" (include "quorum.hubTokenDir" .) .Values.hub.token.key }}
{{- else }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "quorum.hubTokenSecretName" . }}
      key: {{ .Values.hub.token.key }}
{{- end }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Volumes of a Ray pod. Argument: dict "root" $ "head" bool "shm" size "tmp" size "cache" size.
*/}}
{{- define "quorum.podVolumes" -}}
{{- $root := .root -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .tmp }}
- name: cache
  emptyDir:
    sizeLimit: {{ .cache }}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .shm }}
{{- range $claim := splitList "\n" (include "quorum.pvcClaims" $root) }}
{{- if $claim }}
- name: {{ include "quorum.pvcVolumeName" $claim }}
  persistentVolumeClaim:
    claimName: {{ $claim }}
    readOnly: true
{{- end }}
{{- end }}
{{- if and (include "quorum.hubTokenEnabled" $root) $root.Values.hub.token.asFile }}
- name: hub-token
  secret:
    secretName: {{ include "quorum.hubTokenSecretName" $root }}
    defaultMode: 0440
    items:
      - key: {{ $root.Values.hub.token.key }}
        path: {{ $root.Values.hub.token.key }}
{{- end }}
{{- if and .head $root.Values.auth.enabled }}
- name: auth
  secret:
    secretName: {{ include "quorum.authSecretName" $root }}
    defaultMode: 0440
    items:
      - key: {{ $root.Values.auth.key }}
        path: tokens
{{- end }}
{{- if and .head $root.Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "quorum.tlsSecretName" $root }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* Volume mounts of a Ray container. Argument: dict "root" $ "head" bool. */}}
{{- define "quorum.volumeMounts" -}}
{{- $root := .root -}}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /home/ray/.cache
- name: dshm
  mountPath: /dev/shm
{{- range $claim := splitList "\n" (include "quorum.pvcClaims" $root) }}
{{- if $claim }}
- name: {{ include "quorum.pvcVolumeName" $claim }}
  mountPath: {{ include "quorum.pvcMountPath" $claim }}
  readOnly: true
{{- end }}
{{- end }}
{{- if and (include "quorum.hubTokenEnabled" $root) $root.Values.hub.token.asFile }}
- name: hub-token
  mountPath: {{ include "quorum.hubTokenDir" $root }}
  readOnly: true
{{- end }}
{{- if and .head $root.Values.auth.enabled }}
- name: auth
  mountPath: {{ include "quorum.authDir" $root }}
  readOnly: true
{{- end }}
{{- if and .head $root.Values.tls.enabled }}
- name: tls
  mountPath: {{ include "quorum.tlsDir" $root }}
  readOnly: true
{{- end }}
{{- end -}}

{{/*
checkov skips shared by the Ray pods (annotation values are "CHECK_ID=justification").
Argument: dict "root" $ "head" bool.
*/}}
{{- define "quorum.checkovSkips" -}}
{{- $root := .root -}}
{{- $skips := list -}}
{{- /* KubeRay (>= 1.1) injects liveness and readiness probes into Ray containers that define none; its
       probes check the raylet/GCS and, on RayService pods, the Serve proxy. */ -}}
{{- $skips = append $skips "CKV_K8S_8=KubeRay injects Ray-aware liveness probes into Ray containers" -}}
{{- $skips = append $skips "CKV_K8S_9=KubeRay injects Ray-aware readiness probes into Ray containers" -}}
{{- /* The quorum image (Dockerfile) runs as user ray, uid 1000, as rayproject/ray images do. */ -}}
{{- $skips = append $skips "CKV_K8S_40=The quorum image runs as uid 1000 (user ray, home /home/ray), as Ray images do" -}}
{{- if not $root.Values.image.digest -}}
{{- $skips = append $skips "CKV_K8S_43=The image is pinned to the chart appVersion tag; set image.digest to pin by digest" -}}
{{- end -}}
{{- if ne $root.Values.image.pullPolicy "Always" -}}
{{- $skips = append $skips "CKV_K8S_15=Multi-GB inference image pinned to a version tag or digest; IfNotPresent avoids re-pulls on every pod start" -}}
{{- end -}}
{{- if and .head $root.Values.ray.autoscaler.enabled -}}
{{- $skips = append $skips "CKV_K8S_38=The Ray autoscaler sidecar in the head pod patches the RayCluster through the API with this token" -}}
{{- end -}}
{{- if and (include "quorum.hubTokenEnabled" $root) (not $root.Values.hub.token.asFile) -}}
{{- $skips = append $skips "CKV_K8S_35=vLLM reads the hub token from HF_TOKEN; set hub.token.asFile to mount it as a file (HF_TOKEN_PATH)" -}}
{{- end -}}
{{- range $i, $skip := $skips }}
{{- if $i }}{{ "\n" }}{{ end -}}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end -}}
