// The filter form: a week picker that fills from/to, and a province choice
// that reloads the municipalities (the form goes back to the server, which
// renders them and keeps every filter in the URL).

const form = document.getElementById("filters");

function isoWeek(day) {
  // ISO 8601 week of a UTC date: the week holding that Thursday.
  const d = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate()));
  const weekday = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - weekday);
  const yearStart = new Date(Date.UTC(d.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((d - yearStart) / 86400000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

function weekDays(value) {
  const match = /^(\d{4})-W(\d{2})$/.exec(value);
  if (!match) return null;
  const year = Number(match[1]);
  const week = Number(match[2]);
  // Monday of week 1 is the Monday on or before 4 January.
  const jan4 = new Date(Date.UTC(year, 0, 4));
  const monday = new Date(jan4);
  monday.setUTCDate(jan4.getUTCDate() - ((jan4.getUTCDay() || 7) - 1) + (week - 1) * 7);
  const sunday = new Date(monday);
  sunday.setUTCDate(monday.getUTCDate() + 6);
  return [monday.toISOString().slice(0, 10), sunday.toISOString().slice(0, 10)];
}

if (form) {
  const week = document.getElementById("week");
  const from = document.getElementById("from");
  const to = document.getElementById("to");
  const province = document.getElementById("province");
  const municipality = document.getElementById("municipality");

  // Show the week of the current window when it is exactly one ISO week.
  const since = new Date(`${from.value}T00:00:00Z`);
  const until = new Date(`${to.value}T00:00:00Z`);
  if (since.getUTCDay() === 1 && until - since === 6 * 86400000) {
    week.value = isoWeek(since);
  }
  week.addEventListener("change", () => {
    const days = weekDays(week.value);
    if (days) {
      [from.value, to.value] = days;
    }
  });
  for (const input of [from, to]) {
    input.addEventListener("change", () => {
      week.value = "";
    });
  }
  province.addEventListener("change", () => {
    municipality.value = "";
    form.requestSubmit();
  });
  municipality.addEventListener("change", () => form.requestSubmit());
  // Empty fields stay out of the URL, so shared links stay short.
  form.addEventListener("formdata", (event) => {
    for (const [name, value] of [...event.formData.entries()]) {
      if (value === "") event.formData.delete(name);
    }
  });
}
