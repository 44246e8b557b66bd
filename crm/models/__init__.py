"""CRM models, split by sub-domain and re-exported here (each module lists its models in __all__)."""

from crm.models.callbacks import *  # noqa: F403
from crm.models.campaigns import *  # noqa: F403
from crm.models.channels import Channel
from crm.models.consent import *  # noqa: F403
from crm.models.contacts import Contact, FollowRelation
from crm.models.groups import *  # noqa: F403
from crm.models.redpackets import *  # noqa: F403
from crm.models.staff import Staff
from crm.models.tags import ContactTag, Tag, TagGroup
