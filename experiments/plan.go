package experiments

import (
	"fmt"
	"io"
	"strings"
	"text/template"
)

// PlanConfig describes how a cluster runs an experiment's shards.
type PlanConfig struct {
	Experiment string
	Scale      Scale
	Shards     int
	// Results is the shared directory every shard writes into.
	Results string
	// Binary is the eraserelu binary's path on the cluster (Slurm) and Image
	// the container image that holds it (Kubernetes).
	Binary, Image string
	// CPUs, MemoryGiB and GPUs each shard asks for. With a GPU the shard
	// trains on it (--device cuda): Binary and Image must then hold the GPU
	// build (make cuda-build). The CUDA path uses one GPU per process.
	CPUs, MemoryGiB, GPUs int
	// Data and Dataset, when set, are passed to every shard (--data,
	// --dataset).
	Data, Dataset string
}

func (c PlanConfig) validate() error {
	switch {
	case c.Experiment == "":
		return fmt.Errorf("plan: no experiment named")
	case c.Shards < 1:
		return fmt.Errorf("plan: --shards must be >= 1, got %d", c.Shards)
	case c.Results == "":
		return fmt.Errorf("plan: --results (a directory shared by all shards) is required")
	case c.GPUs > 1:
		return fmt.Errorf("plan: --gpus %d: a shard trains on one GPU (the CUDA path is single-device); use --gpus 1 and more --shards", c.GPUs)
	}
	// The experiment and scale are checked here, before anything is written:
	// a plan that names neither correctly fails on every node.
	e, err := Find(c.Experiment)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if _, err := ParseScale(string(c.Scale)); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	if e.Jobs == nil {
		if c.Shards > 1 {
			return fmt.Errorf("plan: %s is measured directly, not made of training jobs: it cannot be sharded; use --shards 1", c.Experiment)
		}
		return nil
	}
	jobs, err := e.Jobs(c.Scale)
	if err != nil {
		return fmt.Errorf("plan: %s: %w", c.Experiment, err)
	}
	if c.Shards > len(jobs) {
		return fmt.Errorf("plan: --shards %d: %s has only %d jobs at %s scale; use --shards %d or fewer", c.Shards, c.Experiment, len(jobs), c.Scale, len(jobs))
	}
	return nil
}

var slurmTemplate = template.Must(template.New("slurm").Parse(`#!/bin/bash
# Slurm job array: one task per shard of experiment {{.Experiment}} ({{.Scale}} scale).
# Submit with: sbatch {{.Experiment}}.slurm ; merge with: {{.Binary}} report {{.Results}}/{{.Experiment}}
#SBATCH --job-name=eraserelu-{{.Experiment}}
#SBATCH --array=0-{{.Last}}
#SBATCH --cpus-per-task={{.CPUs}}
#SBATCH --mem={{.MemoryGiB}}G
{{- if gt .GPUs 0}}
#SBATCH --gres=gpu:{{.GPUs}}
{{- end}}
#SBATCH --output={{.Results}}/{{.Experiment}}/slurm-%A_%a.out
set -euo pipefail
mkdir -p {{.Results}}/{{.Experiment}}
exec {{.Binary}} experiment {{.Experiment}} --scale {{.Scale}} \
  --shard "${SLURM_ARRAY_TASK_ID}/{{.Shards}}" --out {{.Results}}{{.Flags}}
`))

var k8sTemplate = template.Must(template.New("k8s").Parse(`# Kubernetes Indexed Job: one pod per shard of experiment {{.Experiment}} ({{.Scale}} scale).
# Apply with: kubectl apply -f {{.Experiment}}.yaml ; merge with: eraserelu report {{.Results}}/{{.Experiment}}
apiVersion: batch/v1
kind: Job
metadata:
  name: eraserelu-{{.Name}}
spec:
  completionMode: Indexed
  completions: {{.Shards}}
  parallelism: {{.Shards}}
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: shard
          image: {{.Image}}
          command: ["/bin/sh", "-c"]
          args:
            - eraserelu experiment {{.Experiment}} --scale {{.Scale}} --shard "${JOB_COMPLETION_INDEX}/{{.Shards}}" --out /results{{.Flags}}
          resources:
            requests:
              cpu: "{{.CPUs}}"
              memory: {{.MemoryGiB}}Gi
{{- if gt .GPUs 0}}
            limits:
              nvidia.com/gpu: {{.GPUs}}
{{- end}}
          volumeMounts:
            - name: results
              mountPath: /results
      volumes:
        - name: results
          persistentVolumeClaim:
            claimName: {{.Results}}
`))

type planData struct {
	PlanConfig
	Last  int
	Name  string
	Flags string // the shard's further flags, each with a leading space
}

func fill(c PlanConfig) planData {
	if c.Binary == "" {
		c.Binary = "eraserelu"
	}
	if c.Image == "" {
		c.Image = "eraserelu:latest"
	}
	if c.CPUs == 0 {
		c.CPUs = 4
	}
	if c.MemoryGiB == 0 {
		c.MemoryGiB = 16
	}
	var flags strings.Builder
	if c.GPUs > 0 {
		flags.WriteString(" --device cuda")
	}
	if c.Data != "" {
		fmt.Fprintf(&flags, " --data %q", c.Data)
	}
	if c.Dataset != "" {
		fmt.Fprintf(&flags, " --dataset %q", c.Dataset)
	}
	return planData{PlanConfig: c, Last: c.Shards - 1, Name: strings.ToLower(strings.ReplaceAll(c.Experiment, "_", "-")), Flags: flags.String()}
}

// WriteSlurm writes a Slurm job-array script that runs every shard.
func WriteSlurm(w io.Writer, c PlanConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	return slurmTemplate.Execute(w, fill(c))
}

// WriteK8s writes a Kubernetes Indexed Job manifest that runs every shard
// into a persistent volume claim named by Results.
func WriteK8s(w io.Writer, c PlanConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	return k8sTemplate.Execute(w, fill(c))
}
