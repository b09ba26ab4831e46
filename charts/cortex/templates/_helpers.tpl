{{/* Names: Deployments are named after their executables so `kubectl logs deploy/security-master` works. */}}
{{- define "cortex.labels" -}}
app.kubernetes.io/name: cortex
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: cortex
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{- define "cortex.selector" -}}
app.kubernetes.io/name: cortex
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /* Where the coordinator writes its reports, and where cortex-mcp reads them (the same absolute path:
RunState's report directory names it). */}}
{{- define "cortex.reportsPath" -}}/var/lib/cortex-reports{{- end }}

{{- define "cortex.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{- define "cortex.secretName" -}}
{{ default "cortex" .Values.secrets.existingSecret }}
{{- end }}

{{/* The reader service account (cluster-wide get/list/watch) for the processes that read the cluster. */}}
{{- define "cortex.serviceAccount" -}}
{{- if include "cortex.spawner" . -}}cortex-master{{- else if and .root.Values.kubernetes.discovery .reader -}}cortex-reader{{- else -}}cortex{{- end -}}
{{- end }}

{{/* A master in spawn mode (workers.mode jobs or both): it creates and watches worker Jobs. */}}
{{- define "cortex.spawner" -}}
{{- if and (eq (.component | default "") "master") (ne (.root.Values.workers.mode | default "pool") "pool") -}}true{{- end -}}
{{- end }}

{{/* Whether Redis needs a password (then every process reads it from the Secret, as a file). */}}
{{- define "cortex.redisAuth" -}}
{{- if or (and .Values.redis.enabled .Values.redis.auth) (and (not .Values.redis.enabled) .Values.externalRedis.auth) -}}true{{- end -}}
{{- end }}

{{/* Whether each process connects as its role's Redis user (ACL), with that user's password. */}}
{{- define "cortex.redisACL" -}}
{{- if or (and .Values.redis.enabled .Values.redis.auth .Values.redis.acl) (and (not .Values.redis.enabled) .Values.externalRedis.acl) -}}true{{- end -}}
{{- end }}

{{/* The roles with a Redis user (RedisACL.Role); each password is the Secret key redis-password-<role>. */}}
{{- define "cortex.redisRoles" -}}
coordinator master worker implementation-worker catalog-api operator mcp
{{- end }}

{{/* The Secret key holding this process's Redis password. Call with the deployment's dict. */}}
{{- define "cortex.redisPasswordKey" -}}
{{- if include "cortex.redisACL" .root -}}
redis-password-{{ .redisRole | default .component }}
{{- else -}}
{{ .root.Values.secrets.keys.redisPassword }}
{{- end -}}
{{- end }}

{{- define "cortex.redisHost" -}}
redis.{{ .Release.Namespace }}.svc.cluster.local
{{- end }}

{{- define "cortex.sentinels" -}}
{{- $ns := .Release.Namespace -}}
{{- $list := list -}}
{{- range $i := until (int .Values.redis.sentinel.replicas) -}}
{{- $list = append $list (printf "redis-%d.redis-headless.%s.svc.cluster.local:26379" $i $ns) -}}
{{- end -}}
{{ join "," $list }}
{{- end }}

{{/* Environment shared by every Cortex process. Call with (dict "root" $ "component" "coordinator" "reader" true);
"noModel" leaves out the model and budget settings (cortex-mcp calls no model and is not given its key). */}}
{{- define "cortex.env" -}}
- name: CORTEX_LOG_LEVEL
  value: {{ .root.Values.logLevel | quote }}
- name: CORTEX_HTTP_HOST
  value: "0.0.0.0"
- name: CORTEX_HTTP_PORT
  value: {{ .port | default 8080 | toString | quote }}
- name: CORTEX_COORDINATION_DIR
  value: /var/lib/cortex/coordination
- name: CORTEX_INSTANCE_ID
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
- name: NODE_NAME
  valueFrom:
    fieldRef: {fieldPath: spec.nodeName}
- name: CORTEX_KUBERNETES
  value: {{ ternary "auto" "off" (and .root.Values.kubernetes.discovery .reader) | quote }}
{{- if include "cortex.spawner" . }}
{{- $j := .root.Values.workers.jobs }}
- name: CORTEX_WORKER_MODE
  value: {{ .root.Values.workers.mode | quote }}
- name: CORTEX_WORKER_JOB_TEMPLATE
  value: /etc/cortex/worker-job/pod.json
- name: CORTEX_WORKER_JOB_NAMESPACE
  value: {{ .root.Release.Namespace | quote }}
- name: CORTEX_WORKER_JOBS_MAX
  value: {{ $j.maxPerMaster | toString | quote }}
- name: CORTEX_WORKER_JOBS_PER_RUN
  value: {{ $j.maxPerRun | toString | quote }}
- name: CORTEX_WORKER_JOB_TARGET
  value: {{ $j.targetSeconds | toString | quote }}
- name: CORTEX_WORKER_ITEM_SECONDS
  value: {{ $j.itemSeconds | toString | quote }}
- name: CORTEX_WORKER_JOB_DEADLINE
  value: {{ $j.activeDeadlineSeconds | toString | quote }}
- name: CORTEX_WORKER_JOB_TTL
  value: {{ $j.ttlSecondsAfterFinished | toString | quote }}
- name: CORTEX_WORKER_JOB_IDLE
  value: {{ $j.idleSeconds | toString | quote }}
- name: CORTEX_WORKER_JOB_CONCURRENCY
  value: {{ $j.concurrency | default 1 | toString | quote }}
- name: CORTEX_WORKER_JOB_OOM_LIMIT
  value: {{ $j.oomLimit | toString | quote }}
- name: CORTEX_WORKER_JOB_MEMORY_CAP_MIB
  value: {{ $j.memoryCapMiB | toString | quote }}
{{- end }}
{{- $user := "" -}}
{{- if include "cortex.redisACL" .root -}}{{- $user = printf "cortex-%s@" (.redisRole | default .component) -}}{{- end }}
{{- if .root.Values.redis.enabled }}
- name: CORTEX_REDIS_URL
  value: {{ printf "redis://%s%s:6379/0" $user (include "cortex.redisHost" .root) | quote }}
{{- if .root.Values.redis.sentinel.enabled }}
- name: CORTEX_REDIS_SENTINELS
  value: {{ include "cortex.sentinels" .root | quote }}
- name: CORTEX_REDIS_MASTER_NAME
  value: {{ .root.Values.redis.sentinel.masterName | quote }}
{{- end }}
{{- else }}
- name: CORTEX_REDIS_URL
  value: {{ required "externalRedis.url is required when redis.enabled is false" .root.Values.externalRedis.url | replace "://" (printf "://%s" $user) | quote }}
{{- if .root.Values.externalRedis.sentinels }}
- name: CORTEX_REDIS_SENTINELS
  value: {{ .root.Values.externalRedis.sentinels | quote }}
- name: CORTEX_REDIS_MASTER_NAME
  value: {{ .root.Values.externalRedis.masterName | quote }}
{{- end }}
{{- end }}
{{- if or (include "cortex.redisAuth" .root) (include "cortex.redisACL" .root) }}
- name: CORTEX_REDIS_PASSWORD_FILE
  value: /var/run/secrets/cortex/{{ include "cortex.redisPasswordKey" . }}
{{- end }}
- name: CORTEX_CATALOG_URL
  value: {{ printf "http://catalog-api.%s.svc.cluster.local:%d" .root.Release.Namespace (int .root.Values.catalogAPI.service.port) | quote }}
{{- if or .root.Values.secrets.existingSecret .root.Values.secrets.create.catalogClientToken }}
- name: CORTEX_CATALOG_TOKEN_FILE
  value: /var/run/secrets/cortex/{{ .root.Values.secrets.keys.catalogClientToken }}
{{- end }}
{{- if not .noModel }}
- name: CORTEX_LLM_PROVIDER
  value: {{ .root.Values.llm.provider | quote }}
{{- if .root.Values.llm.model }}
- name: CORTEX_LLM_MODEL
  value: {{ .root.Values.llm.model | quote }}
{{- end }}
{{- if .root.Values.llm.baseURL }}
- name: CORTEX_LLM_BASE_URL
  value: {{ .root.Values.llm.baseURL | quote }}
{{- end }}
{{- if ne .root.Values.llm.provider "none" }}
- name: CORTEX_LLM_API_KEY_FILE
  value: /var/run/secrets/cortex/{{ .root.Values.secrets.keys.llmApiKey }}
{{- end }}
- name: CORTEX_BUDGET_TOTAL
  value: {{ .root.Values.budget.total | int | quote }}
- name: CORTEX_BUDGET_RESERVE
  value: {{ .root.Values.budget.reserve | int | quote }}
{{- end }}
{{- range $name, $value := .root.Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{- define "cortex.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "cortex.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
capabilities:
  drop: [ALL]
{{- end }}

{{- define "cortex.probes" -}}
ports:
  - name: http
    containerPort: {{ .port | default 8080 }}
    protocol: TCP
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end }}

{{- define "cortex.podAnnotations" -}}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: "8080"
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* Writable scratch (the root filesystem is read-only) and the Secret's keys as files: only the keys a
Cortex process may read, and of the Redis passwords only its own role's. Call with the deployment's dict;
"secretKeys" (a list) narrows the other keys to those (cortex-mcp: no model or GitHub credentials). */}}
{{- define "cortex.volumes" -}}
{{- $k := .root.Values.secrets.keys -}}
- name: work
  emptyDir: {}
- name: tmp
  emptyDir: {}
- name: secrets
  secret:
    secretName: {{ include "cortex.secretName" .root }}
    optional: true
    defaultMode: 0400
    items:
      {{- range $key := prepend (.secretKeys | default (list $k.llmApiKey $k.githubToken $k.catalogTokens $k.catalogClientToken)) (include "cortex.redisPasswordKey" .) }}
      - {key: {{ $key }}, path: {{ $key }}}
      {{- end }}
{{- end }}

{{- define "cortex.volumeMounts" -}}
- name: work
  mountPath: /var/lib/cortex
- name: tmp
  mountPath: /tmp
- name: secrets
  mountPath: /var/run/secrets/cortex
  readOnly: true
{{- end }}

{{- /* Call with (dict "root" $) or (dict "root" $ "sameNodeAs" "coordinator"): the latter adds a required pod
affinity to that component's pods (to share its ReadWriteOnce volume) to the chart-wide affinity. */}}
{{- define "cortex.scheduling" -}}
{{- $root := .root -}}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := deepCopy ($root.Values.affinity | default dict) -}}
{{- with .sameNodeAs }}
{{- $podAffinity := get $affinity "podAffinity" | default dict -}}
{{- $required := get $podAffinity "requiredDuringSchedulingIgnoredDuringExecution" | default list -}}
{{- $selector := include "cortex.selector" (dict "root" $root "component" .) | fromYaml -}}
{{- $term := dict "labelSelector" (dict "matchLabels" $selector) "topologyKey" "kubernetes.io/hostname" -}}
{{- $_ := set $podAffinity "requiredDuringSchedulingIgnoredDuringExecution" (append $required $term) -}}
{{- $_ := set $affinity "podAffinity" $podAffinity -}}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
