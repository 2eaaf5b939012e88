"""`FakeTelegram`: the scripted Telegram server's state and the tests' handle on it.

One account's view of Telegram: the logged-in user (or bot), other users, basic groups,
channels (broadcast, megagroup, forum), each chat's history as real `types.Message` objects,
and the update sequences that tie them together: an account-wide pts/seq for private chats and
basic groups, and one pts per channel. Every change a test scripts is an event in the right
sequence, whether or not it is delivered, so `getDifference` / `getChannelDifference` can
answer for what a client missed, exactly like the real server.

Message ids follow Telegram: one counter per channel; one account-wide counter shared by
private chats and basic groups.

Transports (`sender.LocalSender`, `remote.RemoteServer`) talk to the world through `open_link`,
`close_link` and `invoke` with TL bytes only; the request handlers live in `rpc.py`. The world
is guarded by one re-entrant lock so a threaded remote server and the test can share it.
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
import random
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from telethon import utils
from telethon.crypto import AuthKey
from telethon.extensions import BinaryReader
from telethon.sessions.abstract import Session
from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

from .media import FileStore
from .srp import SrpServer

log = logging.getLogger(__name__)

# Telethon's defaults: the session starts on DC 2 at this address, and the config we serve
# lists the same DC so Telethon never needs an exported sender for another DC.
DC_ID = 2
DC_IP = "149.154.167.51"
DC_PORT = 443

_BOOL_TRUE = struct.pack("<I", 0x997275B5)
_BOOL_FALSE = struct.pack("<I", 0xBC799737)
_VECTOR = 0x1CB5C415


def _locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


def to_datetime(value: datetime | int | float) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value), tz=UTC)


# -- chats ------------------------------------------------------------------------------------


class History:
    """A chat's messages by id, with the ids kept sorted for offset arithmetic."""

    def __init__(self) -> None:
        self.by_id: dict[int, types.TypeMessage] = {}
        self.ids: list[int] = []  # ascending

    def put(self, msg: types.TypeMessage) -> None:
        if msg.id not in self.by_id:
            bisect.insort(self.ids, msg.id)
        self.by_id[msg.id] = msg

    def remove(self, msg_id: int) -> bool:
        if self.by_id.pop(msg_id, None) is None:
            return False
        del self.ids[bisect.bisect_left(self.ids, msg_id)]
        return True

    def get(self, msg_id: int) -> types.TypeMessage | None:
        return self.by_id.get(msg_id)

    def newest(self) -> types.TypeMessage | None:
        return self.by_id[self.ids[-1]] if self.ids else None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(eq=False)
class FakeUser:
    """A user or bot; also the handle of the private chat between it and the account."""

    id: int
    access_hash: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    phone: str | None = None
    bot: bool = False
    is_self: bool = False
    history: History = field(default_factory=History)  # the private chat with the account
    has_dialog: bool = False
    read_inbox_max_id: int = 0
    date: int = 0

    @property
    def peer(self) -> types.PeerUser:
        return types.PeerUser(self.id)

    @property
    def marked_id(self) -> int:
        return self.id

    def tl(self) -> types.User:
        return types.User(
            id=self.id,
            is_self=self.is_self or None,
            bot=self.bot or None,
            access_hash=self.access_hash,
            first_name=self.first_name,
            last_name=self.last_name,
            username=self.username,
            # Telegram shows the phone of the account itself only (no contacts here).
            phone=self.phone if self.is_self else None,
            bot_info_version=1 if self.bot else None,
            status=None if self.bot else types.UserStatusRecently(),
        )


@dataclass(eq=False)
class FakeGroup:
    """A basic group: message ids come from the account-wide counter."""

    id: int
    title: str
    members: list[FakeUser]
    date: int
    history: History = field(default_factory=History)
    creator: bool = False
    read_inbox_max_id: int = 0
    has_dialog: bool = True

    @property
    def peer(self) -> types.PeerChat:
        return types.PeerChat(self.id)

    @property
    def marked_id(self) -> int:
        return -self.id

    def tl(self) -> types.Chat:
        return types.Chat(
            id=self.id,
            title=self.title,
            photo=types.ChatPhotoEmpty(),
            participants_count=len(self.members),
            date=to_datetime(self.date),
            version=1,
            creator=self.creator or None,
        )


@dataclass(eq=False)
class Event:
    """One step of an update sequence: what changed, at which pts."""

    pts: int
    pts_count: int
    kind: str  # 'new' | 'edit' | 'delete'
    chat: Any
    ids: list[int]


@dataclass(eq=False)
class FakeChannel:
    """A broadcast channel, megagroup or forum, with its own message ids and pts."""

    id: int
    access_hash: int
    title: str
    date: int
    username: str | None = None
    megagroup: bool = False
    forum: bool = False
    signatures: bool = False
    joined: bool = True
    creator: bool = False
    members: list[FakeUser] = field(default_factory=list)
    history: History = field(default_factory=History)
    pts: int = 0
    last_id: int = 0
    events: list[Event] = field(default_factory=list)
    read_inbox_max_id: int = 0
    topics: dict[int, str] = field(default_factory=dict)
    too_long: int = 0  # how many coming getChannelDifference answers are "too long"

    @property
    def peer(self) -> types.PeerChannel:
        return types.PeerChannel(self.id)

    @property
    def marked_id(self) -> int:
        return utils.get_peer_id(self.peer)

    @property
    def has_dialog(self) -> bool:
        return self.joined

    def tl(self) -> types.Channel:
        return types.Channel(
            id=self.id,
            title=self.title,
            photo=types.ChatPhotoEmpty(),
            date=to_datetime(self.date),
            access_hash=self.access_hash,
            username=self.username,
            broadcast=(not self.megagroup) or None,
            megagroup=self.megagroup or None,
            forum=self.forum or None,
            signatures=self.signatures or None,
            creator=self.creator or None,
            left=(not self.joined) or None,
            participants_count=len(self.members),
        )


Chat = FakeUser | FakeGroup | FakeChannel
ChatLike = Chat | int | str


# -- the transport boundary -------------------------------------------------------------------


class Link(Protocol):
    """One client connection as the world sees it (implemented by the transports)."""

    key_id: int | None

    def push(self, data: bytes) -> None:
        """Deliver serialized `Updates` to the client (thread-safe)."""

    def drop(self) -> None:
        """Cut the connection as a network failure would (thread-safe)."""


class RpcFault(Exception):
    """An RPC error the server answers with (`rpc_error#2144ca19 error_code error_message`)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Reply:
    """What `invoke` sends back: the serialized result, or an RPC error."""

    result: bytes | None = None
    error: tuple[int, str] | None = None


@dataclass(frozen=True)
class Call:
    """One request the server received (wrappers such as invokeWithLayer removed)."""

    name: str  # e.g. 'messages.GetHistoryRequest'
    chat_id: int | None  # marked id of the chat the request is about, when it names one
    request: TLObject


@dataclass(eq=False)
class _Fault:
    match: Callable[[TLObject], bool]
    chat_id: int | None
    code: int
    message: str
    remaining: int


def request_name(request: TLObject | type) -> str:
    cls = request if isinstance(request, type) else type(request)
    group = cls.__module__.rsplit(".", 1)[-1]
    return cls.__name__ if group == "functions" else f"{group}.{cls.__name__}"


def encode_result(value: Any) -> bytes:
    """Serialize a handler's result the way the server would put it on the wire."""
    if isinstance(value, bool):
        return _BOOL_TRUE if value else _BOOL_FALSE
    if isinstance(value, TLObject):
        return bytes(value)
    if isinstance(value, list):
        if not all(isinstance(v, TLObject) for v in value):
            raise TypeError("only vectors of TL objects are supported as results")
        return struct.pack("<Ii", _VECTOR, len(value)) + b"".join(bytes(v) for v in value)
    raise TypeError(f"cannot serialize result {value!r}")


# -- the world --------------------------------------------------------------------------------


class FakeTelegram:
    """The scripted server. See the module docstring; every public method is thread-safe."""

    def __init__(
        self,
        *,
        first_name: str = "Ada",
        last_name: str | None = "Lovelace",
        username: str | None = "ada",
        phone: str = "15550100001",
        bot: bool = False,
        bot_token: str | None = None,
        login_code: str = "12345",
        password: str | None = None,
        start_date: datetime | int = datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
        seed: int = 1,
    ) -> None:
        from .rpc import Api  # the handlers need the world; the world needs them to answer

        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._clock = int(to_datetime(start_date).timestamp())
        self.dc_id = DC_ID
        self.media = FileStore(DC_ID, self._rng, self.now, self._lock)

        self._next_user_id = 100_000_000
        self._next_group_id = 400_000
        self._next_channel_id = 1_700_000_000
        self._next_grouped_id = 13_000_000_000_000_000

        self.users: dict[int, FakeUser] = {}
        self.groups: dict[int, FakeGroup] = {}
        self.channels: dict[int, FakeChannel] = {}

        # The account-wide update state (private chats and basic groups).
        self.pts = 1
        self.qts = 0
        self.seq = 1
        self.last_common_id = 0
        self.account_events: list[Event] = []
        self.account_too_long = 0

        self.me = self._new_user(first_name, last_name, username, phone=phone, bot=bot)
        self.me.is_self = True
        self.bot_token = bot_token
        self.login_code = login_code
        self._srp = SrpServer(password, self._rng) if password is not None else None
        self._sent_codes: dict[str, str] = {}  # phone -> phone_code_hash

        # auth key id -> state; 'user' once signed in, 'password' while 2FA is pending.
        self._keys: dict[int, str] = {}
        self._links: list[Link] = []
        # Connections that invoked something without invokeWithoutUpdates: only these get
        # updates pushed (Telethon's receive_updates=False wraps every request in it).
        self._subscribed: set[Link] = set()
        self.offline = False

        self._faults: list[_Fault] = []
        self.calls_log: list[Call] = []
        self.unsupported: list[str] = []  # requests nobody scripted an answer for
        self.internal_errors: list[str] = []  # bugs in this fake, surfaced by the fixtures
        self.layers: set[int] = set()
        self._api = Api(self)

    @_locked
    def set_password(self, password: str | None) -> None:
        """Turn 2FA on (a sign-in then needs the password) or off (None)."""
        self._srp = SrpServer(password, self._rng) if password is not None else None

    # -- time and ids ---------------------------------------------------------------------------

    def now(self) -> datetime:
        return to_datetime(self._clock)

    @_locked
    def tick(self, seconds: int = 1) -> datetime:
        """Advance the server clock."""
        self._clock += seconds
        return self.now()

    def _stamp(self, date: datetime | int | None) -> datetime:
        if date is None:
            self._clock += 1
            return to_datetime(self._clock)
        when = to_datetime(date)
        self._clock = max(self._clock, int(when.timestamp()))
        return when

    def _hash(self) -> int:
        return self._rng.randrange(1, 2**62)

    # -- entities -------------------------------------------------------------------------------

    def _new_user(self, first_name, last_name=None, username=None, *, phone=None, bot=False):
        self._next_user_id += 1
        user = FakeUser(
            id=self._next_user_id,
            access_hash=self._hash(),
            first_name=first_name,
            last_name=last_name,
            username=username,
            phone=phone,
            bot=bot,
            date=self._clock,
        )
        self.users[user.id] = user
        return user

    @_locked
    def add_user(
        self,
        first_name: str,
        last_name: str | None = None,
        *,
        username: str | None = None,
        bot: bool = False,
        phone: str | None = None,
    ) -> FakeUser:
        """Someone the account can see (no private chat until a message or add_private_chat)."""
        return self._new_user(first_name, last_name, username, phone=phone, bot=bot)

    @_locked
    def add_private_chat(self, user: FakeUser) -> FakeUser:
        """Open the private chat with `user` (it is listed in the dialogs); returns its handle."""
        user.has_dialog = True
        return user

    @_locked
    def add_group(
        self, title: str, members: Iterable[FakeUser] = (), *, date: datetime | int | None = None
    ) -> FakeGroup:
        """A basic group the account is in, opened by Telegram's 'created the group' message."""
        self._next_group_id += 1
        when = self._stamp(date)
        group = FakeGroup(
            id=self._next_group_id,
            title=title,
            members=[self.me, *members],
            date=int(when.timestamp()),
            creator=True,
        )
        self.groups[group.id] = group
        action = types.MessageActionChatCreate(title=title, users=[u.id for u in group.members])
        msg = self._build(group, "", action=action, from_user=self.me, date=when)
        self._record_new(group, [msg])
        group.read_inbox_max_id = msg.id  # joining reads what was there
        return group

    @_locked
    def add_channel(
        self,
        title: str,
        username: str | None = None,
        megagroup: bool = False,
        forum: bool = False,
        *,
        members: Iterable[FakeUser] = (),
        joined: bool = True,
        creator: bool = False,
        signatures: bool = False,
        date: datetime | int | None = None,
    ) -> FakeChannel:
        """A channel (broadcast by default; megagroup or forum on request), opened by message 1
        'channel created' at pts 1, as Telegram does."""
        self._next_channel_id += 1
        when = self._stamp(date)
        channel = FakeChannel(
            id=self._next_channel_id,
            access_hash=self._hash(),
            title=title,
            date=int(when.timestamp()),
            username=username,
            megagroup=megagroup or forum,
            forum=forum,
            signatures=signatures,
            joined=joined,
            creator=creator,
            members=list(members),
        )
        self.channels[channel.id] = channel
        action = types.MessageActionChannelCreate(title=title)
        msg = self._build(channel, "", action=action, date=when)
        self._record_new(channel, [msg])
        channel.read_inbox_max_id = msg.id  # joining reads what was there
        return channel

    @_locked
    def add_topic(
        self, forum: FakeChannel, title: str, *, from_user: FakeUser | None = None
    ) -> int:
        """Create a forum topic; returns its id (the id of its service message)."""
        if not forum.forum:
            raise ValueError(f"{forum.title!r} is not a forum")
        action = types.MessageActionTopicCreate(title=title, icon_color=0x6FB9F0)
        msg = self._build(forum, "", action=action, from_user=from_user or self.me)
        self._record_new(forum, [msg])
        forum.topics[msg.id] = title
        return msg.id

    @_locked
    def chat(self, ref: ChatLike) -> Chat:
        """A chat handle from a handle, a marked id (as Telethon's get_peer_id) or a username."""
        if isinstance(ref, FakeUser | FakeGroup | FakeChannel):
            return ref
        if isinstance(ref, str):
            found = self.find_username(ref)
            if found is None:
                raise KeyError(f"no user or channel @{ref}")
            return found
        real_id, kind = utils.resolve_id(ref)
        table = {types.PeerUser: self.users, types.PeerChat: self.groups}.get(kind, self.channels)
        try:
            return table[real_id]
        except KeyError:
            raise KeyError(f"no chat with id {ref}") from None

    def find_username(self, username: str) -> FakeUser | FakeChannel | None:
        name = username.lower().lstrip("@")
        for entity in [*self.users.values(), *self.channels.values()]:
            if entity.username and entity.username.lower() == name:
                return entity
        return None

    def entity_for_peer(self, peer: types.TypePeer) -> Chat | None:
        if isinstance(peer, types.PeerUser):
            return self.users.get(peer.user_id)
        if isinstance(peer, types.PeerChat):
            return self.groups.get(peer.chat_id)
        if isinstance(peer, types.PeerChannel):
            return self.channels.get(peer.channel_id)
        return None

    def dialog_chats(self) -> list[Chat]:
        """Chats the account has a dialog with."""
        chats: list[Chat] = [u for u in self.users.values() if u.has_dialog]
        chats += list(self.groups.values())
        chats += [c for c in self.channels.values() if c.joined]
        return chats

    # -- messages -------------------------------------------------------------------------------

    def _next_id(self, chat: Chat) -> int:
        if isinstance(chat, FakeChannel):
            chat.last_id += 1
            return chat.last_id
        self.last_common_id += 1
        return self.last_common_id

    def _default_sender(self, chat: Chat) -> Chat | None:
        if isinstance(chat, FakeUser):
            return chat if not chat.is_self else self.me
        if isinstance(chat, FakeChannel) and not chat.megagroup:
            return None  # a broadcast post comes from the channel itself
        others = [u for u in chat.members if not u.is_self]
        return others[0] if others else self.me

    def _build(
        self,
        chat: Chat,
        text: str = "",
        *,
        from_user: Chat | None = None,
        date: datetime | int | None = None,
        entities: list | None = None,
        media: types.TypeMessageMedia | None = None,
        reply_to: int | types.TypeMessageReplyHeader | None = None,
        fwd_from: types.MessageFwdHeader | None = None,
        views: int | None = None,
        forwards: int | None = None,
        replies: int | types.MessageReplies | None = None,
        post_author: str | None = None,
        grouped_id: int | None = None,
        via_bot: FakeUser | None = None,
        action: types.TypeMessageAction | None = None,
        reactions: dict | types.MessageReactions | None = None,
        edit_date: datetime | int | None = None,
        topic: int | None = None,
        out: bool | None = None,
        **fields: Any,
    ) -> types.Message | types.MessageService:
        msg_id = self._next_id(chat)
        when = self._stamp(date)
        sender = self._default_sender(chat) if from_user is None else self.chat(from_user)
        broadcast = isinstance(chat, FakeChannel) and not chat.megagroup
        if out is None:
            out = sender is self.me or (broadcast and sender is None and chat.creator)
        # Layer 119+: incoming private messages carry no from_id (the chat is the sender);
        # broadcast posts carry none unless posted with a profile signature.
        from_id = None
        if sender is not None and not (isinstance(chat, FakeUser) and sender is chat):
            from_id = sender.peer
        if isinstance(reply_to, int):
            reply_to = types.MessageReplyHeader(
                reply_to_msg_id=reply_to,
                forum_topic=True if topic else None,
                reply_to_top_id=topic if topic and topic != reply_to else None,
            )
        elif reply_to is None and topic:
            reply_to = types.MessageReplyHeader(reply_to_msg_id=topic, forum_topic=True)
        if isinstance(replies, int):
            replies = types.MessageReplies(replies=replies, replies_pts=getattr(chat, "pts", 0))
        if isinstance(reactions, dict):
            reactions = make_reactions(reactions)
        common = {
            "id": msg_id,
            "peer_id": chat.peer,
            "date": when,
            "out": out or None,
            "post": broadcast or None,
            "from_id": from_id,
            "reply_to": reply_to,
            "reactions": reactions,
        }
        if action is not None:
            return types.MessageService(action=action, **common, **fields)
        if broadcast and views is None:
            views = 1  # every broadcast post has a view counter
        if views is not None or forwards is not None:
            # One flag covers both counters on the wire.
            views, forwards = views or 0, forwards or 0
        return types.Message(
            message=text,
            entities=entities,
            media=media,
            fwd_from=fwd_from,
            views=views,
            forwards=forwards,
            replies=replies,
            post_author=post_author,
            grouped_id=grouped_id,
            via_bot_id=via_bot.id if via_bot else None,
            edit_date=to_datetime(edit_date) if edit_date is not None else None,
            **common,
            **fields,
        )

    def _record(self, chat: Chat, kind: str, ids: list[int], pts_count: int) -> Event:
        """Advance the right pts by `pts_count` and log the event for the differences."""
        if isinstance(chat, FakeChannel):
            chat.pts += pts_count
            event = Event(chat.pts, pts_count, kind, chat, ids)
            chat.events.append(event)
        else:
            self.pts += pts_count
            event = Event(self.pts, pts_count, kind, chat, ids)
            self.account_events.append(event)
        return event

    def _record_new(self, chat: Chat, msgs: list) -> list[Event]:
        events = []
        for msg in msgs:
            chat.history.put(msg)
            events.append(self._record(chat, "new", [msg.id], 1))
        if isinstance(chat, FakeUser):
            chat.has_dialog = True
        return events

    @_locked
    def add_message(self, chat: ChatLike, text: str = "", **kwargs: Any) -> types.TypeMessage:
        """Append a message to the chat's history without telling any client.

        It is a real event in the chat's update sequence (pts advances), so a client that later
        sees a newer update detects the gap and gets it through getDifference, as on Telegram.
        Keyword arguments: from_user, date, entities, media, reply_to, fwd_from, views,
        forwards, replies, post_author, grouped_id, via_bot, action (-> MessageService),
        reactions ({emoji: count}), edit_date, topic (forum topic id), out, and any other
        `types.Message` field.
        """
        chat = self.chat(chat)
        msg = self._build(chat, text, **kwargs)
        self._record_new(chat, [msg])
        return msg

    @_locked
    def add_messages(self, chat: ChatLike, count: int, text: str = "message {i}", **kwargs):
        """`count` messages, text formatted with i = 1..count; returns them."""
        return [self.add_message(chat, text.format(i=i + 1), **kwargs) for i in range(count)]

    @_locked
    def messages(self, chat: ChatLike) -> list[types.TypeMessage]:
        """The chat's current history, oldest first."""
        chat = self.chat(chat)
        return [chat.history.by_id[i] for i in chat.history.ids]

    @_locked
    def message(self, chat: ChatLike, msg_id: int) -> types.TypeMessage:
        found = self.chat(chat).history.get(msg_id)
        if found is None:
            raise KeyError(f"no message {msg_id} in {chat}")
        return found

    @_locked
    def fwd_header(
        self,
        source: Chat | None = None,
        *,
        from_name: str | None = None,
        date: datetime | int | None = None,
        channel_post: int | None = None,
        post_author: str | None = None,
    ) -> types.MessageFwdHeader:
        """A forward header from a user or channel of this world, or a hidden name."""
        return types.MessageFwdHeader(
            date=to_datetime(date) if date is not None else self.now(),
            from_id=source.peer if source is not None else None,
            from_name=from_name,
            channel_post=channel_post,
            post_author=post_author,
        )

    # -- live updates ---------------------------------------------------------------------------

    def _entities(self, chats: Iterable[Chat], msgs: Iterable[Any] = ()) -> tuple[list, list]:
        """The users and chats a response must carry for these chats and messages."""
        found: dict[tuple[str, int], Chat] = {}

        def add(entity: Chat | None) -> None:
            if entity is not None:
                found[(type(entity).__name__, entity.id)] = entity

        for chat in chats:
            add(chat)
        for msg in msgs:
            if msg is None or isinstance(msg, types.MessageEmpty):
                continue
            for peer in peers_in(msg):
                add(self.entity_for_peer(peer))
        users = [e.tl() for e in found.values() if isinstance(e, FakeUser)]
        others = [e.tl() for e in found.values() if not isinstance(e, FakeUser)]
        return users, others

    def _deliver(self, chat: Chat, updates: list, msgs: Iterable[Any] = (), *, seq: bool) -> None:
        """Wrap updates in one `types.Updates` and push it to every signed-in connection.

        Account-sequence containers take the next seq even when nobody is connected, like the
        server's own sequence; channel ones carry seq 0."""
        users, chats = self._entities([chat], msgs)
        if seq:
            self.seq += 1
        self.push_raw(
            types.Updates(
                updates=updates,
                users=users,
                chats=chats,
                date=self.now(),
                seq=self.seq if seq else 0,
            )
        )

    @_locked
    def push_raw(self, updates: types.TypeUpdates) -> None:
        """Deliver any `Updates` object as is to every signed-in connection."""
        data = bytes(updates)
        for link in list(self._links):
            if link in self._subscribed and self._keys.get(link.key_id) == "user":
                link.push(data)

    def _new_update(self, chat: Chat, msg: Any, pts: int) -> types.TypeUpdate:
        if isinstance(chat, FakeChannel):
            return types.UpdateNewChannelMessage(message=msg, pts=pts, pts_count=1)
        return types.UpdateNewMessage(message=msg, pts=pts, pts_count=1)

    @_locked
    def push_new(
        self, chat: ChatLike, text: str = "", *, deliver: bool = True, short: bool = False, **kw
    ) -> types.TypeMessage:
        """A new message, delivered live (add_message's keywords apply).

        `short=True` delivers a private/basic-group text message as UpdateShortMessage /
        UpdateShortChatMessage, the compact forms Telegram uses for plain text."""
        chat = self.chat(chat)
        msg = self._build(chat, text, **kw)
        (event,) = self._record_new(chat, [msg])
        if not deliver:
            return msg
        if short:
            self._push_short(chat, msg, event.pts)
        else:
            update = self._new_update(chat, msg, event.pts)
            self._deliver(chat, [update], [msg], seq=not isinstance(chat, FakeChannel))
        return msg

    def _push_short(self, chat: Chat, msg: Any, pts: int) -> None:
        if isinstance(chat, FakeChannel) or not isinstance(msg, types.Message) or msg.media:
            raise ValueError("short updates exist for plain text in private chats and groups")
        common = {
            "id": msg.id,
            "message": msg.message,
            "pts": pts,
            "pts_count": 1,
            "date": msg.date,
            "out": msg.out,
            "fwd_from": msg.fwd_from,
            "via_bot_id": msg.via_bot_id,
            "reply_to": msg.reply_to,
            "entities": msg.entities,
        }
        if isinstance(chat, FakeUser):
            self.push_raw(types.UpdateShortMessage(user_id=chat.id, **common))
        else:
            sender = msg.from_id.user_id if msg.from_id else self.me.id
            self.push_raw(types.UpdateShortChatMessage(from_id=sender, chat_id=chat.id, **common))

    @_locked
    def push_album(
        self,
        chat: ChatLike,
        n: int = 3,
        *,
        caption: str = "",
        media: list | None = None,
        deliver: bool = True,
        **kw: Any,
    ) -> list[types.Message]:
        """`n` photos (or the given media) sharing one grouped_id, delivered in one Updates;
        the caption goes on the first item, as Telegram clients send it."""
        chat = self.chat(chat)
        self._next_grouped_id += 1
        items = media or [self.media.photo() for _ in range(n)]
        msgs = [
            self._build(
                chat, caption if i == 0 else "", media=m, grouped_id=self._next_grouped_id, **kw
            )
            for i, m in enumerate(items)
        ]
        events = self._record_new(chat, msgs)
        if deliver:
            updates = [self._new_update(chat, m, e.pts) for m, e in zip(msgs, events, strict=True)]
            self._deliver(chat, updates, msgs, seq=not isinstance(chat, FakeChannel))
        return msgs

    @_locked
    def push_edit(
        self,
        chat: ChatLike,
        msg_id: int,
        text: str | None = None,
        *,
        entities: list | None = None,
        media: types.TypeMessageMedia | None = None,
        edit_date: datetime | int | None = None,
        deliver: bool = True,
        **fields: Any,
    ) -> types.Message:
        """Edit a stored message (text, entities, media or any other field) and deliver
        UpdateEditChannelMessage / UpdateEditMessage; edit_date defaults to now."""
        chat = self.chat(chat)
        msg = self.message(chat, msg_id)
        if text is not None:
            msg.message = text
        if entities is not None:
            msg.entities = entities or None
        if media is not None:
            msg.media = media
        for name, value in fields.items():
            setattr(msg, name, value)
        msg.edit_date = self._stamp(edit_date)
        event = self._record(chat, "edit", [msg.id], 1)
        if deliver:
            if isinstance(chat, FakeChannel):
                update = types.UpdateEditChannelMessage(message=msg, pts=event.pts, pts_count=1)
            else:
                update = types.UpdateEditMessage(message=msg, pts=event.pts, pts_count=1)
            self._deliver(chat, [update], [msg], seq=not isinstance(chat, FakeChannel))
        return msg

    @_locked
    def push_delete(self, chat: ChatLike, ids: Iterable[int], *, deliver: bool = True) -> None:
        """Delete messages from the history; one pts step per deleted message."""
        chat = self.chat(chat)
        gone = [i for i in ids if chat.history.remove(i)]
        if not gone:
            raise KeyError(f"none of {ids} is in the history")
        event = self._record(chat, "delete", gone, len(gone))
        if not deliver:
            return
        if isinstance(chat, FakeChannel):
            update = types.UpdateDeleteChannelMessages(
                channel_id=chat.id, messages=gone, pts=event.pts, pts_count=len(gone)
            )
            self._deliver(chat, [update], seq=False)
        else:
            # Account-wide ids are unique, so the update names no chat (as on Telegram).
            update = types.UpdateDeleteMessages(messages=gone, pts=event.pts, pts_count=len(gone))
            self._deliver(chat, [update], seq=True)

    @_locked
    def push_reactions(
        self,
        chat: ChatLike,
        msg_id: int,
        reactions: dict | types.MessageReactions,
        *,
        deliver: bool = True,
    ) -> types.MessageReactions:
        """Set a message's reactions ({'👍': 3} or a MessageReactions) and deliver
        UpdateMessageReactions (no pts: reactions are not part of the message sequence)."""
        chat = self.chat(chat)
        msg = self.message(chat, msg_id)
        msg.reactions = make_reactions(reactions) if isinstance(reactions, dict) else reactions
        if deliver:
            update = types.UpdateMessageReactions(
                peer=chat.peer, msg_id=msg_id, reactions=msg.reactions
            )
            self._deliver(chat, [update], seq=False)
        return msg.reactions

    @_locked
    def push_views(
        self,
        chat: FakeChannel,
        msg_id: int,
        views: int,
        *,
        forwards: int | None = None,
        deliver: bool = True,
    ) -> None:
        """Set a channel post's view (and forward) counters; UpdateChannelMessageViews."""
        chat = self.chat(chat)
        msg = self.message(chat, msg_id)
        msg.views = views
        msg.forwards = msg.forwards or 0  # one flag covers both counters on the wire
        updates: list = [
            types.UpdateChannelMessageViews(channel_id=chat.id, id=msg_id, views=views)
        ]
        if forwards is not None:
            msg.forwards = forwards
            updates.append(
                types.UpdateChannelMessageForwards(channel_id=chat.id, id=msg_id, forwards=forwards)
            )
        if deliver:
            self._deliver(chat, updates, seq=False)

    @_locked
    def push_channel_too_long(self, chat: FakeChannel) -> None:
        """Tell clients the channel has more news than fits in updates (UpdateChannelTooLong):
        Telethon asks getChannelDifference for it at once."""
        chat = self.chat(chat)
        update = types.UpdateChannelTooLong(channel_id=chat.id, pts=chat.pts)
        self._deliver(chat, [update], seq=False)

    @_locked
    def mark_read(self, chat: ChatLike, max_id: int | None = None) -> None:
        """Move the account's read position (the dialog's read_inbox_max_id)."""
        chat = self.chat(chat)
        newest = chat.history.newest()
        chat.read_inbox_max_id = max_id if max_id is not None else (newest.id if newest else 0)

    # -- faults ---------------------------------------------------------------------------------

    @_locked
    def fail(
        self,
        request_type: type | str,
        message: str,
        code: int = 400,
        *,
        times: int = 1,
        chat: ChatLike | None = None,
    ) -> None:
        """The next `times` matching requests (optionally about `chat`) fail with this error."""
        name = request_type if isinstance(request_type, str) else request_name(request_type)
        chat_id = self.chat(chat).marked_id if chat is not None else None
        self._faults.append(
            _Fault(_matcher(name), chat_id, code, message, times),
        )

    def flood_wait(
        self, request_type: type | str, seconds: int, times: int = 1, *, chat=None
    ) -> None:
        """The next `times` matching requests raise FLOOD_WAIT_<seconds> (code 420)."""
        self.fail(request_type, f"FLOOD_WAIT_{seconds}", 420, times=times, chat=chat)

    @_locked
    def gap(self, chat: ChatLike, n: int = 1, text: str = "missed {i}", **kw) -> list:
        """`n` messages the clients are not told about: the chat's pts moves on, so the next
        delivered update shows a gap and the difference returns these messages."""
        return self.add_messages(chat, n, text, **kw)

    @_locked
    def too_long(self, chat: ChatLike | None = None, times: int = 1) -> None:
        """The next `times` getChannelDifference answers for `chat` are
        ChannelDifferenceTooLong (or, chat None, the next getDifference is DifferenceTooLong)."""
        if chat is None:
            self.account_too_long += times
        else:
            channel = self.chat(chat)
            if not isinstance(channel, FakeChannel):
                raise ValueError("only channels have a channel difference")
            channel.too_long += times

    @_locked
    def disconnect(self) -> int:
        """Drop every connection (the clients see a network failure and reconnect unless
        `offline` is set). Returns how many were dropped."""
        links, self._links = self._links, []
        self._subscribed.clear()
        for link in links:
            link.drop()
        return len(links)

    @_locked
    def set_offline(self, offline: bool = True) -> None:
        """While offline, new connections are refused (reconnects fail and are retried)."""
        self.offline = offline

    @_locked
    def expire_file_reference(self, chat: ChatLike, msg_id: int) -> bytes:
        """The file reference of this message's photo/document stops working; messages
        fetched from now on carry the new one. Returns the new reference."""
        media = getattr(self.message(chat, msg_id), "media", None)
        obj = getattr(media, "photo", None) or getattr(media, "document", None)
        if obj is None:
            raise ValueError(f"message {msg_id} has no photo or document")
        return self.media.expire(obj)

    # -- observation ----------------------------------------------------------------------------

    @_locked
    def calls(self, request_type: type | str | None = None, chat: ChatLike | None = None):
        """Requests received so far, optionally only of one type ('messages.GetHistoryRequest',
        'GetHistoryRequest' or the class) and/or about one chat."""
        match = _matcher(request_type) if request_type is not None else (lambda _r: True)
        chat_id = self.chat(chat).marked_id if chat is not None else None
        return [
            c
            for c in self.calls_log
            if match(c.request) and (chat_id is None or c.chat_id == chat_id)
        ]

    @_locked
    def call_names(self) -> list[str]:
        return [c.name for c in self.calls_log]

    @_locked
    def clear_calls(self) -> None:
        self.calls_log.clear()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._links)

    # -- sessions and the transport boundary ----------------------------------------------------

    @_locked
    def authorize(self, session: Session) -> None:
        """Make `session` a signed-in session of this account (as after a login), so a test can
        start from a logged-in client."""
        key = AuthKey(os.urandom(256))
        self._keys[key.key_id] = "user"
        session.set_dc(self.dc_id, DC_IP, DC_PORT)
        session.auth_key = key
        session.save()

    def key_state(self, key_id: int | None) -> str | None:
        return self._keys.get(key_id)

    def set_key_state(self, key_id: int | None, state: str | None) -> None:
        if key_id is None:
            return
        if state is None:
            self._keys.pop(key_id, None)
        else:
            self._keys[key_id] = state

    @_locked
    def open_link(self, link: Link, key: bytes | None) -> bytes:
        """A client connects with its auth key (None: a new key is agreed, as the DH exchange
        would). Raises ConnectionRefusedError while offline."""
        if self.offline:
            raise ConnectionRefusedError("fake Telegram is offline")
        auth = AuthKey(key or os.urandom(256))
        link.key_id = auth.key_id
        self._links.append(link)
        return auth.key

    @_locked
    def close_link(self, link: Link) -> None:
        if link in self._links:
            self._links.remove(link)
        self._subscribed.discard(link)

    def invoke(self, link: Link, data: bytes) -> Reply:
        """Answer one serialized request from `link` with the serialized result or an error.
        Never raises: whatever goes wrong becomes an answer, so no request waits forever."""
        with self._lock:
            name = "<unparsed request>"
            try:
                request = BinaryReader(data).tgread_object()
                inner, quiet = self._unwrap(request)
                if not quiet and link in self._links:
                    self._subscribed.add(link)
                name = request_name(inner)
                chat_id = self._api.chat_of(inner)
                self.calls_log.append(Call(name, chat_id, inner))
                self._apply_faults(inner, chat_id)
                result = self._api.answer(link, inner)
                return Reply(result=encode_result(result))
            except RpcFault as e:
                return Reply(error=(e.code, e.message))
            except Exception as e:  # a bug in the fake; answer and let the fixtures fail
                log.exception("fake Telegram failed answering %s", name)
                self.internal_errors.append(f"{name}: {type(e).__name__}: {e}")
                return Reply(error=(400, f"FAKE_TELEGRAM_INTERNAL_ERROR {type(e).__name__}"))

    def _unwrap(self, request: TLObject) -> tuple[TLObject, bool]:
        """Strip invokeWithLayer / initConnection / invokeWithoutUpdates / invokeAfterMsg;
        also say whether invokeWithoutUpdates was among them."""
        quiet = False
        while True:
            if isinstance(request, functions.InvokeWithLayerRequest):
                self.layers.add(request.layer)
            quiet = quiet or isinstance(request, functions.InvokeWithoutUpdatesRequest)
            if isinstance(
                request,
                functions.InvokeWithLayerRequest
                | functions.InitConnectionRequest
                | functions.InvokeWithoutUpdatesRequest
                | functions.InvokeAfterMsgRequest
                | functions.InvokeAfterMsgsRequest,
            ):
                request = request.query
            else:
                return request, quiet

    def _apply_faults(self, request: TLObject, chat_id: int | None) -> None:
        for fault in self._faults:
            if fault.remaining <= 0 or not fault.match(request):
                continue
            if fault.chat_id is not None and fault.chat_id != chat_id:
                continue
            fault.remaining -= 1
            raise RpcFault(fault.code, fault.message)


# -- helpers ----------------------------------------------------------------------------------


def _matcher(request_type: type | str) -> Callable[[TLObject], bool]:
    if isinstance(request_type, type):
        return lambda r: isinstance(r, request_type)
    return lambda r: request_type in (request_name(r), type(r).__name__)


def make_reactions(counts: dict) -> types.MessageReactions:
    """{'👍': 3, 5368324170671202286: 1} -> MessageReactions (int keys are custom emoji)."""
    results = []
    for key, count in counts.items():
        reaction = (
            types.ReactionCustomEmoji(document_id=key)
            if isinstance(key, int)
            else types.ReactionEmoji(emoticon=key)
        )
        results.append(types.ReactionCount(reaction=reaction, count=count))
    return types.MessageReactions(results=results)


def peers_in(msg: Any) -> list[types.TypePeer]:
    """Every peer a message mentions, so responses can carry the matching users and chats."""
    peers = [msg.peer_id, getattr(msg, "from_id", None)]
    fwd = getattr(msg, "fwd_from", None)
    if fwd is not None:
        peers += [fwd.from_id, fwd.saved_from_peer]
    reply = getattr(msg, "reply_to", None)
    if isinstance(reply, types.MessageReplyHeader):
        peers.append(reply.reply_to_peer_id)
    if getattr(msg, "via_bot_id", None):
        peers.append(types.PeerUser(msg.via_bot_id))
    action = getattr(msg, "action", None)
    for user_id in getattr(action, "users", None) or []:
        peers.append(types.PeerUser(user_id))
    media = getattr(msg, "media", None)
    if isinstance(media, types.MessageMediaContact) and media.user_id:
        peers.append(types.PeerUser(media.user_id))
    return [p for p in peers if p is not None]
