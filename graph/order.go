package graph

import (
	"reflect"

	"gorgonia.org/gorgonia"
)

// machineOrder is the order in which a tape machine built on sub runs its op
// nodes: the machine's own record when it can be read (Gorgonia keeps it
// unexported), else the same topological sort Gorgonia's compiler does. It
// returns nil if the machine merged op nodes (its common-subexpression
// elimination merges nodes of equal 32-bit hashes), as the memory plan
// reasons about each node's own value.
func machineOrder(m gorgonia.VM, sub *gorgonia.ExprGraph) (gorgonia.Nodes, error) {
	byPtr := map[uintptr]*gorgonia.Node{}
	for _, n := range sub.AllNodes() {
		byPtr[reflect.ValueOf(n).Pointer()] = n
	}
	var sorted gorgonia.Nodes
	if prog := progOf(m); prog.IsValid() {
		if f := prog.FieldByName("sorted"); f.IsValid() && f.Kind() == reflect.Slice {
			for i := 0; i < f.Len(); i++ {
				n, ok := byPtr[f.Index(i).Pointer()]
				if !ok {
					sorted = nil
					break
				}
				sorted = append(sorted, n)
			}
		}
		if f := prog.FieldByName("df"); f.IsValid() && !f.IsNil() {
			if r := f.Elem().FieldByName("replacements"); r.IsValid() && r.Kind() == reflect.Map {
				it := r.MapRange()
				for it.Next() {
					if it.Key().Pointer() != it.Value().Pointer() {
						if a := byPtr[it.Key().Pointer()]; a != nil && a.Op() != nil && !a.IsVar() && !isConstant(a) {
							return nil, nil
						}
					}
				}
			}
		}
	}
	if sorted == nil {
		var err error
		if sorted, err = gorgonia.Sort(sub); err != nil {
			return nil, err
		}
		for i, j := 0, len(sorted)-1; i < j; i, j = i+1, j-1 {
			sorted[i], sorted[j] = sorted[j], sorted[i]
		}
	}
	var order gorgonia.Nodes
	for _, n := range sorted {
		if n.Op() != nil && !n.IsVar() && !isConstant(n) {
			order = append(order, n)
		}
	}
	return order, nil
}

// progOf is the machine's compiled program (a struct), or an invalid value.
func progOf(m gorgonia.VM) (v reflect.Value) {
	defer func() {
		if recover() != nil {
			v = reflect.Value{}
		}
	}()
	meth := reflect.ValueOf(m).MethodByName("Prog")
	if !meth.IsValid() || meth.Type().NumIn() != 0 || meth.Type().NumOut() != 1 {
		return reflect.Value{}
	}
	out := meth.Call(nil)[0]
	if out.Kind() != reflect.Pointer || out.IsNil() {
		return reflect.Value{}
	}
	return out.Elem()
}
