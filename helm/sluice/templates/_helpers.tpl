{{/*
Names, labels and the image shared by the chart's templates.
*/}}

{{/* The prefix of every object's name: fullnameOverride, else "<release>-sluice". */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "sluice" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sluice" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; pass a dict with "root" and "component". */}}
{{- define "sluice.labels" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of the operator's pods. */}}
{{- define "sluice.operatorSelector" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
The metadata.annotations block of a hook object: its hook, weight and delete policy, then
commonAnnotations (the schema refuses helm.sh/ keys there). Pass a dict with "root" and "weight".
*/}}
{{- define "sluice.hookAnnotations" -}}
annotations:
  helm.sh/hook: pre-install,pre-upgrade
  helm.sh/hook-weight: {{ .weight | quote }}
  helm.sh/hook-delete-policy: before-hook-creation
{{- with .root.Values.commonAnnotations }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/* The metadata.annotations block of an ordinary object, when there are any. */}}
{{- define "sluice.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations:
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/* The image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "sluice.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The migration Job's ServiceAccount. */}}
{{- define "sluice.migratorServiceAccount" -}}
{{- if .Values.migrationJob.serviceAccount.name -}}
{{- .Values.migrationJob.serviceAccount.name -}}
{{- else if .Values.migrationJob.serviceAccount.create -}}
{{- printf "%s-migrator" (include "sluice.fullname" .) -}}
{{- else -}}
{{- fail "migrationJob.serviceAccount.name: with serviceAccount.create false, name the existing ServiceAccount the migration Job runs as" -}}
{{- end -}}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "sluice.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.name -}}
{{- .Values.operator.serviceAccount.name -}}
{{- else if .Values.operator.serviceAccount.create -}}
{{- printf "%s-operator" (include "sluice.fullname" .) -}}
{{- else -}}
{{- fail "operator.serviceAccount.name: with serviceAccount.create false, name the existing ServiceAccount the operator runs as" -}}
{{- end -}}
{{- end -}}

{{/* The migrations ConfigMap the Job mounts: the existing one, or the chart's. */}}
{{- define "sluice.migrationsConfigMap" -}}
{{- default (printf "%s-migrations" (include "sluice.fullname" .)) .Values.migrations.existingConfigMap -}}
{{- end -}}

{{/* The MigrationJob the hook Job reports to. */}}
{{- define "sluice.migrationJobName" -}}
{{- include "sluice.fullname" . -}}
{{- end -}}

{{/*
The security context of every sluice container: non-root (the image's user 65532), read-only
root filesystem, no privilege escalation, every capability dropped, seccomp RuntimeDefault.
*/}}
{{- define "sluice.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The pod-level security context of every sluice pod. */}}
{{- define "sluice.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
