package campaign

import (
	"outreach/internal/apperr"
)

// Action is a state change a user asks for.
type Action string

const (
	ActionStart    Action = "start"
	ActionPause    Action = "pause"
	ActionResume   Action = "resume"
	ActionCancel   Action = "cancel"
	ActionSchedule Action = "schedule" // start with a start_at in the future
	ActionComplete Action = "complete" // the engine, when every delivery is final
)

// transitions lists, for each action, the states it may leave from and the
// state it leads to.
var transitions = map[Action]struct {
	from []State
	to   State
}{
	ActionStart:    {[]State{StateDraft, StateScheduled}, StateRunning},
	ActionSchedule: {[]State{StateDraft}, StateScheduled},
	ActionPause:    {[]State{StateRunning}, StatePaused},
	ActionResume:   {[]State{StatePaused}, StateRunning},
	ActionCancel:   {[]State{StateDraft, StateScheduled, StateRunning, StatePaused}, StateCancelled},
	ActionComplete: {[]State{StateRunning}, StateCompleted},
}

// Transition returns the states action may leave from and the state it leads
// to; apperr.ErrConflict wraps an unknown action.
func Transition(a Action) (from []State, to State, err error) {
	t, ok := transitions[a]
	if !ok {
		return nil, "", apperr.Conflict("unknown action %q", a)
	}
	return t.from, t.to, nil
}

// Final reports whether no further transition can leave s.
func (s State) Final() bool { return s == StateCompleted || s == StateCancelled }
