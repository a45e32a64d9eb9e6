"""Cases: a lead taken up by a unit, its states up to the court's outcome, the retention clock.

- `states`: the pure state machine (which transition is allowed, and why).
- `retention`: the pure retention clock (when an ISP may erase an observation).
- `records`: cases in the store (open, list, show, move, note, assign), each
  read and change checked against the user's unit and audited.
- `deadlines`: leads and cases whose observations are about to expire.
- `answers`: the ISP's answer, then search, seizure, charges and outcome.
- `identity`: the subscriber an ISP names, who may read it, and the
  audited "combination" that shows it next to the traffic data.
- `funnel`: from addresses detected to accusations, per period and place.
"""
