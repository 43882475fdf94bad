package messages

// maxDepth is encoding/json's nesting limit: deeper input is not valid JSON to it.
const maxDepth = 10000

// validJSON reports whether data is one valid JSON value (RFC 8259), surrounded by
// whitespace at most: what json.Valid reports, in one pass of tight loops instead of
// encoding/json's per-byte state machine. As json.Valid, it does not check that
// strings are valid UTF-8.
func validJSON(data []byte) bool {
	var stack []byte // the open containers, '{' or '['
	i := skipSpace(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; c {
		case '{', '[':
			end := byte('}')
			if c == '[' {
				end = ']'
			}
			if len(stack) >= maxDepth { // an empty one counts too, as to encoding/json
				return false
			}
			i = skipSpace(data, i+1)
			if i < len(data) && data[i] == end {
				i++
				break // an empty container: a complete value
			}
			stack = append(stack, c)
			if c == '{' {
				if i = objectKey(data, i); i < 0 {
					return false
				}
			}
			continue // the first member's value, or the first item
		case '"':
			i = validStringEnd(data, i)
		case 't':
			i = literalEnd(data, i, "true")
		case 'f':
			i = literalEnd(data, i, "false")
		case 'n':
			i = literalEnd(data, i, "null")
		default:
			i = numberEnd(data, i)
		}
		if i < 0 {
			return false
		}
		// A value ended at i: close the containers it ends, or go on to the next.
		for {
			i = skipSpace(data, i)
			if len(stack) == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			top := stack[len(stack)-1]
			c := data[i]
			if c == ',' {
				i = skipSpace(data, i+1)
				if top == '{' {
					if i = objectKey(data, i); i < 0 {
						return false
					}
				}
				break
			}
			if (c == '}' && top == '{') || (c == ']' && top == '[') {
				stack = stack[:len(stack)-1]
				i++
				continue
			}
			return false
		}
	}
}

// objectKey reads `"key" :` at i and returns where the member's value starts, or -1.
func objectKey(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = validStringEnd(data, i); i < 0 {
		return -1
	}
	i = skipSpace(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipSpace(data, i+1)
}

// validStringEnd returns the index after the valid JSON string starting at data[i] (a
// '"'), or -1: no control characters, only JSON's escapes.
func validStringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); {
		switch c := data[j]; {
		case c == '"':
			return j + 1
		case c < ' ':
			return -1
		case c == '\\':
			if j+1 >= len(data) {
				return -1
			}
			switch data[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(data) {
					return -1
				}
				for _, h := range data[j+2 : j+6] {
					if !isHex(h) {
						return -1
					}
				}
				j += 6
			default:
				return -1
			}
		default:
			j++
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// literalEnd returns the index after lit at data[i], or -1.
func literalEnd(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// numberEnd returns the index after the JSON number at data[i], or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(data []byte, i int) int {
	j := i
	if j < len(data) && data[j] == '-' {
		j++
	}
	switch {
	case j >= len(data):
		return -1
	case data[j] == '0':
		j++
	case '1' <= data[j] && data[j] <= '9':
		for j < len(data) && isDigit(data[j]) {
			j++
		}
	default:
		return -1
	}
	if j < len(data) && data[j] == '.' {
		j++
		if j >= len(data) || !isDigit(data[j]) {
			return -1
		}
		for j < len(data) && isDigit(data[j]) {
			j++
		}
	}
	if j < len(data) && (data[j] == 'e' || data[j] == 'E') {
		j++
		if j < len(data) && (data[j] == '+' || data[j] == '-') {
			j++
		}
		if j >= len(data) || !isDigit(data[j]) {
			return -1
		}
		for j < len(data) && isDigit(data[j]) {
			j++
		}
	}
	return j
}
