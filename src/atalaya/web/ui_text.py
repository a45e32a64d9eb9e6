"""The words the map's and list's scripts write, in the request's language.

The scripts build text as the user works (the status line, popups, badges),
so they cannot take it from the page's markup: the page carries these
strings as JSON and `static/ui_text.js` fills their %(name)s placeholders.
"""

from __future__ import annotations

from atalaya.web.i18n import _


def ui_text() -> dict[str, str]:
    return {
        "selection": _(
            "%(count)s leads in this selection, %(placed)s on the map, %(urgent)s urgent"
        ),
        "unplaced": _(" (%(unplaced)s without a place)"),
        "loading": _("Loading the selection…"),
        "leads_failed": _("The leads could not be loaded: %(error)s"),
        "base_failed": _("The base map could not be drawn: %(error)s"),
        "list_failed": _("The list could not be loaded: %(error)s"),
        "cluster_title": _("%(count)s leads, %(urgent)s urgent (score %(score)s+)"),
        "lead_title": _("lead %(id)s, score %(score)s"),
        "lead_popup_score": _("score %(score)s · %(files)s known files"),
        "lead_link": _("Lead #%(id)s"),
        "score": _("score %(score)s"),
        "province_urgent": _("%(urgent)s urgent leads in this selection (%(per_week)s a week)"),
        "remove_province": _("Remove from the filter"),
        "add_province": _("Add to the filter"),
        "only_province": _("Only this province"),
        "new": _("new"),
        "conflict": _("conflict"),
        "conflict_title": _("Another unit also holds this lead"),
        "selected": _("Selected: %(count)s"),
        "pick_lead": _("Select lead %(id)s"),
    }
