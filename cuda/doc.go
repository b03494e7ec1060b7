// Package cuda is the CUDA execution path of the op library: a training step
// of a compiled graph run entirely on one GPU.
//
// The package splits into a part that needs no GPU and no CUDA headers, built
// and tested by every `go test ./...`, and a part behind the `gpu` build tag:
//
//   - Lower turns a compiled *graph.Program (forward, loss, backward, the tape's
//     node order) into a Step: a flat list of kernel launches (Instr) over
//     buffers (Buf), plus the SGD update. Every op kind of graph/ops
//     (ops.Describe) maps to kernels here (lowerings); TestEveryOpHasALowering
//     fails when a kind has none. Each op family's file (conv.go,
//     batchnorm.go, ...) holds its kernels' typed arguments, catalog entries
//     with their reference semantics, and its lowering.
//   - Plan assigns every buffer an offset in one device arena, once: persistent
//     state (parameters, gradients, velocities, running statistics, the input
//     batch) in a fixed region, activations and scratch packed by liveness.
//   - The kernel catalog (Kernels) gives each CUDA kernel of kernels/ops.cu its
//     parameter list (from its argument struct, args.go), launch configuration
//     and reference semantics; a test checks it against the .cu source.
//   - LowerInference turns the inference pass (batch norm on its running
//     statistics, no backward, no optimizer) into a Step over the training
//     step's parameters and statistics, planned into the same arena.
//   - Backend (NewBackend) is the trainer's device backend (train.Backend):
//     it runs both steps on an Executor, the Device or RefExecutor, and
//     copies state to and from the graph only at Load and Sync.
//   - Ref is a CPU interpreter of a planned Step with the same kernel semantics
//     (one float32 arena, the planned offsets, so aliasing bugs show), checked
//     against graph.Program.Train and train.SGD in plain Go tests.
//   - Behind `-tags gpu` (not `cuda`: that tag switches on Gorgonia's own cuDNN 7 path, which cannot build; see docs/CUDA.md): Device, the executor that loads the PTX, allocates
//     the arena once, copies a batch in, launches the Step (optionally as one
//     CUDA graph) and copies back only the loss and metrics; cuBLAS does the
//     GEMMs. See docs/CUDA.md.
package cuda
