"""CRM models, split by sub-domain and re-exported here (each module lists its models in __all__)."""

from crm.models import callbacks, campaigns, consent, draws, erasure, gates, groups, redpackets, rollups, segments
from crm.models.callbacks import *  # noqa: F403
from crm.models.campaigns import *  # noqa: F403
from crm.models.channels import Channel
from crm.models.consent import *  # noqa: F403
from crm.models.contacts import Contact, ContactEvent, FollowRelation, SyncRun, WelcomeMessage
from crm.models.draws import *  # noqa: F403
from crm.models.erasure import *  # noqa: F403
from crm.models.gates import *  # noqa: F403
from crm.models.groups import *  # noqa: F403
from crm.models.redpackets import *  # noqa: F403
from crm.models.rollups import *  # noqa: F403
from crm.models.segments import *  # noqa: F403
from crm.models.staff import GroupHandoverItem, Handover, HandoverItem, Staff
from crm.models.tags import ContactTag, Tag, TagGroup

__all__ = [
    "Channel", "Contact", "ContactEvent", "ContactTag", "FollowRelation", "GroupHandoverItem", "Handover",
    "HandoverItem", "Staff", "SyncRun", "Tag", "TagGroup", "WelcomeMessage",
    *callbacks.__all__, *campaigns.__all__, *consent.__all__, *draws.__all__, *erasure.__all__, *gates.__all__,
    *groups.__all__,
    *redpackets.__all__,
    *rollups.__all__, *segments.__all__,
]
