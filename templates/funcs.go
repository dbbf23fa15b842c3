package templates

import (
	"fmt"
	"text/template"
)

// maxPad bounds printf widths and precisions: fmt pads in memory before the
// capped writer sees anything, so "%999999d" would allocate a megabyte.
const maxPad = 100

// funcs replaces the builtins that build strings. Nested, they multiply
// ({{print (print .Name .Name) (print .Name .Name)}}), and their results are
// held in memory before any write, so each call is capped on its own. The
// other builtins (and, or, not, eq…, len, index, slice, call) cannot grow
// text and are left as they are.
func funcs() template.FuncMap {
	return template.FuncMap{
		"print":    capped(fmt.Sprint),
		"println":  capped(fmt.Sprintln),
		"html":     capped(template.HTMLEscaper),
		"js":       capped(template.JSEscaper),
		"urlquery": capped(template.URLQueryEscaper),
		"printf":   printf,
	}
}

func capped(f func(...any) string) func(...any) (string, error) {
	return func(args ...any) (string, error) {
		if err := checkArgs(args); err != nil {
			return "", err
		}
		return checkResult(f(args...))
	}
}

func printf(format string, args ...any) (string, error) {
	if err := checkFormat(format); err != nil {
		return "", err
	}
	if err := checkArgs(append([]any{format}, args...)); err != nil {
		return "", err
	}
	return checkResult(fmt.Sprintf(format, args...))
}

func checkArgs(args []any) error {
	n := 0
	for _, a := range args {
		if s, ok := a.(string); ok {
			n += len(s)
		} else {
			n += len(fmt.Sprint(a))
		}
	}
	if n > MaxOutputBytes {
		return fmt.Errorf("%w (the arguments alone are %d bytes)", ErrOutputTooLarge, n)
	}
	return nil
}

func checkResult(s string) (string, error) {
	if len(s) > MaxOutputBytes {
		return "", ErrOutputTooLarge
	}
	return s, nil
}

// checkFormat refuses widths and precisions over maxPad, and '*', which takes
// them from an argument.
func checkFormat(format string) error {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		n := 0
	verb:
		for i++; i < len(format); i++ {
			switch c := format[i]; {
			case c >= '0' && c <= '9':
				if n = n*10 + int(c-'0'); n > maxPad {
					return fmt.Errorf("width or precision over %d in %q", maxPad, format)
				}
			case c == '*':
				return fmt.Errorf("* width or precision in %q", format)
			case c == '.' || c == '[' || c == ']' || c == '+' || c == '-' || c == '#' || c == ' ':
				n = 0
			default:
				break verb
			}
		}
	}
	return nil
}
