package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// Config is everything that decides a training run, as written to the run
// directory's config.json. A config starts from a named recipe
// (RecipeConfig), may be overlaid by a JSON file (LoadConfig) and then field
// by field (Set, or ApplyFlags from command-line flags), and is checked by
// Validate. Field names in JSON, in Set and in errors are the JSON tags;
// flags use the same names with dashes (weight_decay -> --weight-decay).
type Config struct {
	// Recipe is the name of the recipe the values started from.
	Recipe string `json:"recipe"`
	// BatchSize is the mini-batch size; the graph's input x must have it as
	// its first dimension.
	BatchSize int `json:"batch_size"`
	// Epochs is the number of passes over the training data. With
	// Iterations set as well, training stops at whichever comes first.
	Epochs int `json:"epochs"`
	// Iterations, when > 0, stops training after that many optimizer
	// steps, possibly mid-epoch (He et al. count 64k iterations).
	Iterations int `json:"iterations"`

	LR          float64 `json:"lr"`
	Momentum    float64 `json:"momentum"`
	Dampening   float64 `json:"dampening"`
	Nesterov    bool    `json:"nesterov"`
	WeightDecay float64 `json:"weight_decay"`

	// Milestones multiply the learning rate by Gamma when reached, counted
	// in MilestoneUnit ("epoch" or "iteration").
	Milestones    []int   `json:"milestones"`
	MilestoneUnit string  `json:"milestone_unit"`
	Gamma         float64 `json:"gamma"`
	// StepEvery, when > 0, multiplies the learning rate by Gamma every
	// StepEvery epochs.
	StepEvery int `json:"step_every"`
	// WarmupIters iterations run at WarmupLR before the schedule starts.
	WarmupIters int     `json:"warmup_iters"`
	WarmupLR    float64 `json:"warmup_lr"`

	// Seed drives initialisation, data order and op randomness: build the
	// graph and the data sources from it.
	Seed uint64 `json:"seed"`
	// CheckpointEvery keeps a checkpoint of every CheckpointEvery-th epoch
	// besides the latest (0: the latest only). It does not change results.
	CheckpointEvery int `json:"checkpoint_every"`
	// Commit is the project's git commit, filled in by the trainer.
	Commit string `json:"commit,omitempty"`
}

// Recipe is a named training recipe from a paper.
type Recipe struct {
	Name string
	// Source cites where the values come from.
	Source string
	Config Config
}

// Recipes is the table of training recipes the paper says it followed
// (sections 4.2 and 4.3), named after their papers, plus one for the MLP.
// It returns fresh copies: callers may change them.
func Recipes() []Recipe {
	he := Config{BatchSize: 128, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4,
		Iterations: 64000, Milestones: []int{32000, 48000}, MilestoneUnit: "iteration", Gamma: 0.1}
	he110 := he
	he110.Milestones = []int{32000, 48000}
	he110.WarmupIters, he110.WarmupLR = 400, 0.01
	preact := Config{BatchSize: 128, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4,
		Epochs: 164, Milestones: []int{81, 122}, MilestoneUnit: "epoch", Gamma: 0.1,
		WarmupIters: 400, WarmupLR: 0.01}
	rs := []Recipe{
		{Name: "he-resnet", Source: "He et al. 2016a, Deep Residual Learning for Image Recognition, sec. 4.2 (CIFAR-10): batch 128, lr 0.1, momentum 0.9, weight decay 1e-4, /10 at 32k and 48k iterations, 64k in total", Config: he},
		{Name: "he-resnet-110", Source: "He et al. 2016a, sec. 4.2: for ResNet-110, lr 0.01 until the training error is below 80% (about 400 iterations; here exactly 400), then the he-resnet schedule", Config: he110},
		{Name: "preact-resnet", Source: "He et al. 2016b, Identity Mappings in Deep Residual Networks, appendix (CIFAR): batch 128, lr 0.1 /10 at 32k and 48k iterations of 64k (fb.resnet.torch: epochs 81 and 122 of 164), weight decay 1e-4, momentum 0.9, warm-up at 0.01 for the first 400 iterations (used there for all CIFAR runs, ResNet-1001 included; set warmup_iters 0 to drop it)", Config: preact},
		{Name: "wrn", Source: "Zagoruyko & Komodakis 2016, Wide Residual Networks, sec. 3 (CIFAR): SGD with Nesterov momentum 0.9 and dampening 0, batch 128, lr 0.1 x0.2 at epochs 60, 120 and 160 of 200, weight decay 5e-4",
			Config: Config{BatchSize: 128, LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
				Epochs: 200, Milestones: []int{60, 120, 160}, MilestoneUnit: "epoch", Gamma: 0.2}},
		{Name: "wrn-svhn", Source: "Zagoruyko & Komodakis 2016, sec. 3 (SVHN): as wrn but lr 0.01 x0.1 at epochs 80 and 120 of 160 (dropout 0.4 is an architecture option)",
			Config: Config{BatchSize: 128, LR: 0.01, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
				Epochs: 160, Milestones: []int{80, 120}, MilestoneUnit: "epoch", Gamma: 0.1}},
		{Name: "resnext", Source: "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks, sec. 5.3 (CIFAR): batch 128, lr 0.1 /10 at epochs 150 and 225 of 300, momentum 0.9, weight decay 5e-4",
			Config: Config{BatchSize: 128, LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4,
				Epochs: 300, Milestones: []int{150, 225}, MilestoneUnit: "epoch", Gamma: 0.1}},
		{Name: "stochastic-depth", Source: "Huang et al. 2016, Deep Networks with Stochastic Depth, sec. 4 (CIFAR): 500 epochs, batch 128, lr 0.1 /10 at epochs 250 and 375, weight decay 1e-4, Nesterov momentum 0.9 with dampening 0",
			Config: Config{BatchSize: 128, LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 1e-4,
				Epochs: 500, Milestones: []int{250, 375}, MilestoneUnit: "epoch", Gamma: 0.1}},
		{Name: "imagenet", Source: "EraseReLU sec. 4.3, following PyTorch's examples/imagenet/main.py: batch 256, lr 0.1 /10 every 30 epochs, 120 epochs, momentum 0.9, weight decay 1e-4",
			Config: Config{BatchSize: 256, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4,
				Epochs: 120, StepEvery: 30, MilestoneUnit: "epoch", Gamma: 0.1}},
		{Name: "mlp-mnist", Source: "Ours: the paper gives no recipe for the 12-layer MNIST MLP of Figure 3(c); we chose batch 128, SGD momentum 0.9, lr 0.01 /10 at epochs 10 and 15 of 20, no weight decay",
			Config: Config{BatchSize: 128, LR: 0.01, Momentum: 0.9, WeightDecay: 0,
				Epochs: 20, Milestones: []int{10, 15}, MilestoneUnit: "epoch", Gamma: 0.1}},
	}
	for i := range rs {
		rs[i].Config.Recipe = rs[i].Name
		rs[i].Config.Milestones = append([]int(nil), rs[i].Config.Milestones...)
	}
	return rs
}

// RecipeNames lists the recipes' names in table order.
func RecipeNames() []string {
	var names []string
	for _, r := range Recipes() {
		names = append(names, r.Name)
	}
	return names
}

// RecipeConfig returns the named recipe's config.
func RecipeConfig(name string) (Config, error) {
	for _, r := range Recipes() {
		if r.Name == name {
			return r.Config, nil
		}
	}
	return Config{}, fmt.Errorf("unknown recipe %q (valid: %s)", name, strings.Join(RecipeNames(), ", "))
}

// LoadConfig reads a JSON config file. When it names a recipe, the file's
// fields overlay that recipe's values; otherwise they overlay the zero
// Config. Unknown fields are errors. The result is not validated.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// ReadRunConfig reads the config.json of a run directory as written, with
// no recipe lookup (its recipe may be a custom name): the config to pass
// to New with Options.Resume.
func ReadRunConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("run config: %w", err)
	}
	var c Config
	if err := c.Overlay(b); err != nil {
		return Config{}, fmt.Errorf("run config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig is LoadConfig on the file's contents.
func ParseConfig(b []byte) (Config, error) {
	var head struct {
		Recipe string `json:"recipe"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Config{}, err
	}
	var c Config
	if head.Recipe != "" {
		var err error
		if c, err = RecipeConfig(head.Recipe); err != nil {
			return Config{}, err
		}
	}
	return c, c.Overlay(b)
}

// Overlay sets the fields present in the JSON object b.
func (c *Config) Overlay(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return err
	}
	return nil
}

// Field describes one Config field for command-line front ends.
type Field struct {
	// Name is the JSON name, Flag the flag name (dashes for underscores).
	Name, Flag string
	// Type is "int", "uint", "float", "bool", "string" or "ints"
	// (a comma-separated list).
	Type  string
	Usage string
}

var fieldUsage = map[string]string{
	"recipe":           "training recipe",
	"batch_size":       "mini-batch size",
	"epochs":           "passes over the training data",
	"iterations":       "stop after this many optimizer steps (0: use epochs)",
	"lr":               "base learning rate",
	"momentum":         "SGD momentum",
	"dampening":        "SGD dampening (must be 0 with Nesterov)",
	"nesterov":         "use Nesterov momentum",
	"weight_decay":     "L2 weight decay added to the gradient",
	"milestones":       "multiply the learning rate by gamma at these points (comma-separated)",
	"milestone_unit":   "unit of the milestones: epoch or iteration",
	"gamma":            "learning-rate factor at each milestone or step",
	"step_every":       "multiply the learning rate by gamma every this many epochs (0: off)",
	"warmup_iters":     "iterations at warmup_lr before the schedule starts",
	"warmup_lr":        "learning rate during warm-up",
	"seed":             "random seed (initialisation, data order, op randomness)",
	"checkpoint_every": "keep a checkpoint every this many epochs besides the latest (0: latest only)",
	"commit":           "git commit of the code (set automatically)",
}

// Fields lists the Config fields in declaration order.
func Fields() []Field {
	var fs []Field
	t := reflect.TypeOf(Config{})
	for i := range t.NumField() {
		f := t.Field(i)
		name := jsonName(f)
		var typ string
		switch f.Type.Kind() {
		case reflect.Int:
			typ = "int"
		case reflect.Uint64:
			typ = "uint"
		case reflect.Float64:
			typ = "float"
		case reflect.Bool:
			typ = "bool"
		case reflect.String:
			typ = "string"
		case reflect.Slice:
			typ = "ints"
		}
		fs = append(fs, Field{Name: name, Flag: strings.ReplaceAll(name, "_", "-"), Type: typ, Usage: fieldUsage[name]})
	}
	return fs
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return name
}

// Set parses value into the field with the given JSON or flag name, e.g.
// Set("weight_decay", "5e-4"), Set("milestones", "60,120,160").
func (c *Config) Set(name, value string) error {
	name = strings.ReplaceAll(name, "-", "_")
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		if jsonName(t.Field(i)) != name {
			continue
		}
		f := v.Field(i)
		value = strings.TrimSpace(value)
		switch f.Kind() {
		case reflect.Int:
			n, err := strconv.Atoi(value)
			if err != nil {
				return fmt.Errorf("%s: %q is not an integer", name, value)
			}
			f.SetInt(int64(n))
		case reflect.Uint64:
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not a non-negative integer", name, value)
			}
			f.SetUint(n)
		case reflect.Float64:
			x, err := strconv.ParseFloat(value, 64)
			if err != nil {
				return fmt.Errorf("%s: %q is not a number", name, value)
			}
			f.SetFloat(x)
		case reflect.Bool:
			b, err := strconv.ParseBool(value)
			if err != nil {
				return fmt.Errorf("%s: %q is not true or false", name, value)
			}
			f.SetBool(b)
		case reflect.String:
			f.SetString(value)
		case reflect.Slice:
			var ns []int
			for _, s := range strings.Split(value, ",") {
				if s = strings.TrimSpace(s); s == "" {
					continue
				}
				n, err := strconv.Atoi(s)
				if err != nil {
					return fmt.Errorf("%s: %q is not an integer", name, s)
				}
				ns = append(ns, n)
			}
			f.Set(reflect.ValueOf(ns))
		}
		return nil
	}
	var valid []string
	for _, f := range Fields() {
		valid = append(valid, f.Name)
	}
	return fmt.Errorf("unknown config field %q (valid: %s)", name, strings.Join(valid, ", "))
}

// flagValue is a string-typed pflag.Value that remembers what was given.
type flagValue struct {
	typ, val string
}

func (f *flagValue) String() string     { return f.val }
func (f *flagValue) Set(s string) error { f.val = s; return nil }
func (f *flagValue) Type() string       { return f.typ }

// AddFlags registers one flag per Config field (except recipe and commit,
// which a command handles itself) on fs. Their defaults come from the
// recipe, so the flags have none; ApplyFlags copies the ones given.
func AddFlags(fs *pflag.FlagSet) {
	for _, f := range Fields() {
		if f.Name == "recipe" || f.Name == "commit" {
			continue
		}
		v := &flagValue{typ: f.Type}
		fl := fs.VarPF(v, f.Flag, "", f.Usage+" (default: the recipe's)")
		if f.Type == "bool" {
			fl.NoOptDefVal = "true"
		}
	}
}

// ApplyFlags sets on c every Config field whose flag was given on fs
// (registered by AddFlags), naming the flag in errors.
func (c *Config) ApplyFlags(fs *pflag.FlagSet) error {
	var errs []error
	for _, f := range Fields() {
		fl := fs.Lookup(f.Flag)
		if fl == nil || !fl.Changed {
			continue
		}
		if err := c.Set(f.Name, fl.Value.String()); err != nil {
			errs = append(errs, fmt.Errorf("flag --%s: %w", f.Flag, err))
		}
	}
	return errors.Join(errs...)
}

// Validate checks every field, naming each bad one: "lr must be > 0, got -1".
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.BatchSize <= 0 {
		bad("batch_size must be > 0, got %d", c.BatchSize)
	}
	if c.Epochs < 0 {
		bad("epochs must be >= 0, got %d", c.Epochs)
	}
	if c.Iterations < 0 {
		bad("iterations must be >= 0, got %d", c.Iterations)
	}
	if c.Epochs == 0 && c.Iterations == 0 {
		bad("epochs or iterations must be > 0, got epochs 0 and iterations 0")
	}
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		bad("lr must be > 0, got %v", c.LR)
	}
	if err := (SGDOptions{Momentum: c.Momentum, Dampening: c.Dampening, WeightDecay: c.WeightDecay, Nesterov: c.Nesterov}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseUnit(c.MilestoneUnit); err != nil {
		bad("milestone_unit must be epoch or iteration, got %q", c.MilestoneUnit)
	}
	for i, m := range c.Milestones {
		if m <= 0 {
			bad("milestones must be > 0, got %d at position %d", m, i)
		} else if i > 0 && m <= c.Milestones[i-1] {
			bad("milestones must increase, got %d after %d", m, c.Milestones[i-1])
		}
	}
	if c.StepEvery < 0 {
		bad("step_every must be >= 0, got %d", c.StepEvery)
	}
	if (len(c.Milestones) > 0 || c.StepEvery > 0) && (!(c.Gamma > 0) || math.IsInf(c.Gamma, 0)) {
		bad("gamma must be > 0, got %v", c.Gamma)
	}
	if c.WarmupIters < 0 {
		bad("warmup_iters must be >= 0, got %d", c.WarmupIters)
	}
	if c.WarmupIters > 0 && (!(c.WarmupLR > 0) || math.IsInf(c.WarmupLR, 0)) {
		bad("warmup_lr must be > 0 when warmup_iters > 0, got %v", c.WarmupLR)
	}
	if c.CheckpointEvery < 0 {
		bad("checkpoint_every must be >= 0, got %d", c.CheckpointEvery)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// SGDOptions are the optimizer settings of the config.
func (c Config) SGDOptions() SGDOptions {
	return SGDOptions{Momentum: c.Momentum, Dampening: c.Dampening, WeightDecay: c.WeightDecay, Nesterov: c.Nesterov}
}

// Schedule composes the config's learning-rate schedule: the base rate,
// the milestones, the periodic steps, then the warm-up.
func (c Config) Schedule() Schedule {
	s := Constant(c.LR)
	unit, _ := ParseUnit(c.MilestoneUnit)
	if len(c.Milestones) > 0 {
		s = MultiStep(s, unit, c.Gamma, c.Milestones...)
	}
	if c.StepEvery > 0 {
		s = StepEvery(s, Epochs, c.Gamma, c.StepEvery)
	}
	if c.WarmupIters > 0 {
		s = Warmup(s, c.WarmupIters, c.WarmupLR)
	}
	return s
}

// Hash identifies the settings that decide the results: every field but
// Commit and CheckpointEvery, hashed as canonical JSON (SHA-256, 16 hex digits).
func (c Config) Hash() string {
	c.Commit, c.CheckpointEvery = "", 0
	if len(c.Milestones) == 0 {
		c.Milestones = nil
	}
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Diff names the fields whose values differ between c and d, e.g. for
// refusing to resume a run under other settings.
func (c Config) Diff(d Config) []string {
	var out []string
	cv, dv := reflect.ValueOf(c), reflect.ValueOf(d)
	t := cv.Type()
	for i := range t.NumField() {
		a, b := cv.Field(i).Interface(), dv.Field(i).Interface()
		if as, ok := a.([]int); ok {
			if fmt.Sprint(as) == fmt.Sprint(b.([]int)) {
				continue
			}
		} else if a == b {
			continue
		}
		out = append(out, fmt.Sprintf("%s: %v vs %v", jsonName(t.Field(i)), a, b))
	}
	sort.Strings(out)
	return out
}
