// Package train is the training engine: SGD with PyTorch's semantics,
// learning-rate schedules, the paper's training recipes, a Trainer that
// drives a compiled graph.Program over a data source, run directories with
// metrics, plots and safetensors checkpoints, exact resumption, and
// mean ± std summaries over seeds.
//
// # A run
//
//	cfg, _ := train.RecipeConfig("wrn")        // the paper's recipe
//	cfg.Set("epochs", "10")                    // or cfg.ApplyFlags(cmd.Flags()), train.LoadConfig(path)
//	cfg.Seed = 1
//	// build the graph (inputs "x", "y"; outputs "logits", "loss") and the
//	// loaders from cfg.Seed (pipeline.Compile builds and compiles the
//	// paper's networks), then:
//	prog, _ := graph.Compile(g, "loss")
//	tr, err := train.New(prog, cfg, train.FromEpochs(trainBatcher), train.FromEpochs(testBatcher),
//		train.Options{Dir: "runs/wrn-seed1", Logger: logger, Progress: os.Stderr})
//	defer tr.Close()
//	res, err := tr.Run(ctx)
//
// A step fills the trainer's x and y tensors from the data and hands them
// to the backend, which reads the batch from them (the CPU backend binds
// them as the program's inputs), runs Program.Train, checks that the loss
// is finite, and takes an SGD step at the schedule's learning rate (which
// also zeroes the gradients it has read).
// Each epoch ends with an evaluation of the test data in inference mode
// (Program.Infer), a checkpoint, metrics.csv and the plots.
//
// # Metrics
//
// The loss is the graph's "loss" output, taken to be the mean over the
// labelled examples of a batch. When the loss node's op is a Scorer, top-1
// and top-5 errors (in percent) are reported too. Train metrics are running
// averages over the epoch's mini-batches, in training mode, while the weights
// change; test metrics are computed after the epoch.
//
// # The run directory
//
//	config.json                  the resolved Config, with seed and git commit
//	metrics.csv                  one row per epoch
//	results.json                 the Result, when the run finishes
//	train.log                    every log line, logrus JSON, appended on resume
//	loss.png, error.png          the curves (gonum/plot)
//	checkpoints/last.safetensors the latest checkpoint (epoch end, or where it was cancelled)
//	checkpoints/epoch-NNNN.safetensors  kept every Config.CheckpointEvery epochs
//
// Every file but the log is written atomically (a temporary file in the same
// directory, fsync, rename, fsync of the directory), and a fresh run refuses
// a directory that already holds one, so nothing written is lost.
//
// # Checkpoints and resuming
//
// Checkpoints are safetensors files, loadable with safetensors.torch.load_file:
// parameters under their names, buffers (batch-norm statistics) under theirs,
// SGD velocities under "optim.velocity.<name>", and metadata with the epoch,
// batch within the epoch, step, seed, config hash and config, the metrics so
// far, the random state of every op that is an RNGStater and the state of a
// StatefulBackend (the CUDA path's fp16 loss scaler). Options.Resume
// continues a run exactly: the result is bitwise the one of an uninterrupted
// run, because a data source's order depends only on (seed, epoch), schedules
// are functions of (iteration, epoch), and a checkpoint taken mid-epoch
// replays the epoch's first batches without training on them.
//
// A loss that becomes NaN or infinite stops the run with a *DivergedError
// (step, epoch, last finite loss); the last checkpoint, taken before, is kept.
// Cancelling the context stops the run between steps and saves a checkpoint.
package train
