"""The store: call records now; the ticket (工单) lifecycle comes later."""
