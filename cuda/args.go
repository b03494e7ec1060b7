package cuda

import "fmt"

// Kernel arguments are typed: each kernel of kernels/ops.cu has a struct
// whose params method lists its int fields, then its float fields, in the
// order of the kernel's parameter list. That one list is the encoding both
// ways: lowering encodes a struct into an Instr's Ints and Floats (which the
// device passes to the kernel as they are), and the reference interpreter
// and the launch rule decode them back into the struct.

// kernelArgs is the pointer to a kernel's argument struct.
type kernelArgs[A any] interface {
	*A
	params() ([]*int, []*float64)
}

// kernel is a kernel of ops.cu taking arguments A (and buffers), as the
// lowering emits it. Its catalog entry (Kernels) holds its launch rule and
// its reference semantics.
type kernel[A any, P kernelArgs[A]] struct{ name string }

// refFn is the reference semantics of a kernel (Ref): b are its buffers'
// contents, in its parameter order.
type refFn[A any] func(r *Ref, in Instr, a A, b [][]float32)

// defKernel adds a kernel to the catalog: its name in ops.cu, its argument
// struct, its number of buffers, its launch configuration and its reference
// semantics.
func defKernel[A any, P kernelArgs[A]](name string, buffers int, launch func(A) Dim, ref refFn[A]) kernel[A, P] {
	var a A
	ints, floats := P(&a).params()
	if _, dup := Kernels[name]; dup {
		panic("cuda: kernel " + name + " defined twice")
	}
	Kernels[name] = Kernel{Name: name, Ints: len(ints), Floats: len(floats), Buffers: buffers,
		Launch: func(v []int) Dim {
			a, _ := decodeArgs[A, P](v, make([]float64, len(floats)))
			return launch(a)
		},
		ref: func(r *Ref, in Instr, b [][]float32) error {
			a, err := decodeArgs[A, P](in.Ints, in.Floats)
			if err != nil {
				return err
			}
			ref(r, in, a, b)
			return nil
		}}
	return kernel[A, P]{name}
}

// instr is a launch of k with arguments a over bufs, writing writes.
func (k kernel[A, P]) instr(a A, bufs, writes []int) Instr {
	ints, floats := encodeArgs[A, P](a)
	return Instr{Kernel: k.name, Ints: ints, Floats: floats, Bufs: bufs, Writes: writes}
}

func encodeArgs[A any, P kernelArgs[A]](a A) ([]int, []float64) {
	ip, fp := P(&a).params()
	var ints []int
	var floats []float64
	for _, p := range ip {
		ints = append(ints, *p)
	}
	for _, p := range fp {
		floats = append(floats, *p)
	}
	return ints, floats
}

func decodeArgs[A any, P kernelArgs[A]](ints []int, floats []float64) (A, error) {
	var a A
	ip, fp := P(&a).params()
	if len(ints) != len(ip) || len(floats) != len(fp) {
		return a, fmt.Errorf("%d ints and %d floats, the kernel takes %d and %d", len(ints), len(floats), len(ip), len(fp))
	}
	for i, p := range ip {
		*p = ints[i]
	}
	for i, p := range fp {
		*p = floats[i]
	}
	return a, nil
}

// Argument structs shared by several families.

// ElemArgs: N elements (or items).
type ElemArgs struct{ N int }

func (a *ElemArgs) params() ([]*int, []*float64) { return []*int{&a.N}, nil }

// NCIArgs: a tensor (N, C, Inner), channels on axis 1.
type NCIArgs struct{ N, C, Inner int }

func (a *NCIArgs) params() ([]*int, []*float64) { return []*int{&a.N, &a.C, &a.Inner}, nil }

// RowsArgs: a row-major matrix of Rows x Cols.
type RowsArgs struct{ Rows, Cols int }

func (a *RowsArgs) params() ([]*int, []*float64) { return []*int{&a.Rows, &a.Cols}, nil }

// nci splits a shape into N, C and the product of the rest.
func nci(s []int) NCIArgs {
	inner := 1
	for _, d := range s[2:] {
		inner *= d
	}
	return NCIArgs{N: s[0], C: s[1], Inner: inner}
}

// size is the element count of the tensor.
func (a NCIArgs) size() int { return a.N * a.C * a.Inner }
