{{/*
One Cortex Deployment. Call with (dict "root" $ "name" "security-master" "component" "master"
"replicas" 1 "reader" false "resources" ... "env" (list of extra env) "volumes" ... "mounts" ...).
The container is named after the executable it runs. Optional: "port" (the HTTP port, default 8080),
"noMetrics" (no /metrics to scrape: no prometheus.io annotations), "noModel" (see cortex.env),
"secretKeys" (see cortex.volumes), "sameNodeAs" (a component whose node this pod must run on: see cortex.scheduling).
*/}}
{{- define "cortex.deployment" -}}
{{- $root := .root -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "cortex.labels" . | nindent 4 }}
    cortex.io/process: {{ .name }}
  {{- if include "cortex.spawner" . }}
  annotations:
    # checkov: this master creates and watches worker Jobs (a Role in this namespace only), so it needs its token.
    checkov.io/skip1: CKV_K8S_38=Creates and watches worker Jobs with the namespaced cortex-worker-jobs Role
  {{- else if and $root.Values.kubernetes.discovery .reader }}
  annotations:
    # checkov: this process reads the cluster through the API (read-only ClusterRole), so it needs its token.
    checkov.io/skip1: CKV_K8S_38=Reads the cluster through the Kubernetes API with the read-only cortex-reader role
  {{- end }}
spec:
  replicas: {{ .replicas | int }}
  {{- with .strategy }}
  strategy:
    type: {{ . }}
  {{- end }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "cortex.selector" . | nindent 6 }}
      cortex.io/process: {{ .name }}
  template:
    metadata:
      labels:
        {{- include "cortex.labels" . | nindent 8 }}
        cortex.io/process: {{ .name }}
      {{- if not .noMetrics }}
      annotations:
        {{- include "cortex.podAnnotations" $root | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "cortex.serviceAccount" . }}
      automountServiceAccountToken: {{ or (include "cortex.spawner" .) (and $root.Values.kubernetes.discovery .reader) | default false }}
      securityContext:
        {{- include "cortex.podSecurityContext" $root | nindent 8 }}
      # SIGTERM: the process hands its in-flight work back to its stream before exiting.
      terminationGracePeriodSeconds: 30
      {{- include "cortex.scheduling" (dict "root" $root "sameNodeAs" .sameNodeAs) | nindent 6 }}
      containers:
        - name: {{ .executable | default .name }}
          image: {{ include "cortex.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [{{ .executable | default .name | quote }}]
          env:
            {{- include "cortex.env" . | nindent 12 }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "cortex.probes" . | nindent 10 }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- include "cortex.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "cortex.volumeMounts" $root | nindent 12 }}
            {{- with .mounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        {{- include "cortex.volumes" . | nindent 8 }}
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
{{- end }}
