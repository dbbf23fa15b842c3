package templates

import (
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// isField reports whether a template may use .name; keep in step with view.
func isField(name string) bool {
	switch name {
	case "Name", "InstallLink", "RewardMB", "Region", "Attr":
		return true
	}
	return false
}

// validate walks the whole tree, so that a mistake in a branch the sample
// run does not take is still caught at Parse, not on the millionth message.
// It answers the fields the template prints: a field only tested ({{if
// .RewardMB}}) or printed only where it was tested true ({{if
// .RewardMB}}{{.RewardMB}}MB{{end}}) is not counted, since an empty value
// prints nothing there.
func validate(tmpl *template.Template) (map[string]bool, error) {
	for _, other := range tmpl.Templates() {
		if other.Name() != tmpl.Name() {
			return nil, fmt.Errorf("define and block are not allowed (found %q)", other.Name())
		}
	}
	if tmpl.Tree == nil {
		return nil, nil
	}
	c := checker{tree: tmpl.Tree, used: map[string]bool{}}
	c.walk(tmpl.Tree.Root)
	return c.used, c.err
}

type checker struct {
	tree *parse.Tree
	err  error
	used map[string]bool
	// guard collects the fields of an if or with condition being walked;
	// guarded are the fields tested true around the node being walked.
	guard   map[string]bool
	guarded []map[string]bool
}

func (c *checker) fail(n parse.Node, format string, args ...any) {
	if c.err == nil {
		loc, _ := c.tree.ErrorContext(n)
		loc = strings.TrimPrefix(loc, c.tree.ParseName+":")
		c.err = fmt.Errorf("line %s: %s", loc, fmt.Sprintf(format, args...))
	}
}

func (c *checker) walk(n parse.Node) {
	if n == nil || c.err != nil {
		return
	}
	switch n := n.(type) {
	case *parse.ListNode:
		for _, m := range n.Nodes {
			c.walk(m)
		}
	case *parse.ActionNode:
		c.walk(n.Pipe)
	case *parse.IfNode:
		c.branch(&n.BranchNode)
	case *parse.WithNode:
		c.branch(&n.BranchNode)
	case *parse.RangeNode:
		// The only loop: {{range 1000000000}} would spin without writing a byte.
		c.fail(n, "range is not allowed")
	case *parse.TemplateNode:
		// Templates calling templates can grow exponentially.
		c.fail(n, "template and block are not allowed")
	case *parse.PipeNode:
		for _, cmd := range n.Cmds {
			c.walk(cmd)
		}
	case *parse.CommandNode:
		for _, arg := range n.Args {
			c.walk(arg)
		}
	case *parse.ChainNode:
		c.fail(n, "%s: values have no fields", n)
	case *parse.FieldNode:
		c.field(n, n.Ident)
	case *parse.VariableNode:
		// $ is the root: $.Name. Other variables hold values without fields,
		// which the sample run reports.
		if n.Ident[0] == "$" && len(n.Ident) > 1 {
			c.field(n, n.Ident[1:])
		}
	}
}

func (c *checker) branch(b *parse.BranchNode) {
	outer := c.guard
	c.guard = map[string]bool{}
	c.walk(b.Pipe)
	tested := c.guard
	c.guard = outer
	c.guarded = append(c.guarded, tested)
	c.walk(b.List)
	c.guarded = c.guarded[:len(c.guarded)-1]
	if b.ElseList != nil { // a nil *ListNode is not a nil Node
		c.walk(b.ElseList)
	}
}

func (c *checker) field(n parse.Node, ident []string) {
	switch {
	case !isField(ident[0]):
		c.fail(n, "unknown field .%s; fields are .Name, .InstallLink, .RewardMB, .Region, and .Attr \"key\" for custom attributes", ident[0])
	case len(ident) > 1:
		c.fail(n, ".%s has no field .%s", ident[0], ident[1])
	case c.guard != nil:
		c.guard[ident[0]] = true
	default:
		for _, g := range c.guarded {
			if g[ident[0]] {
				return
			}
		}
		c.used[ident[0]] = true
	}
}
