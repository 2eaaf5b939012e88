"""The scripted Telegram's answers: one handler per Telegram request Telethon sends.

Each handler reads the request as it came off the wire and answers with the TL objects the
real server would (types.messages.ChannelMessages with pts and count, Dialogs with top
messages and their users/chats, ChannelDifference built from the channel's event log...), or
raises `RpcFault` with Telegram's own error message. The offsets of messages.getHistory follow
Telegram's documented arithmetic (https://core.telegram.org/api/offsets), which Telethon's
`iter_messages` depends on in both directions.

A request without a handler is answered with a 400 error naming it (never a hang), and is
recorded in `world.unsupported` so the fixtures can fail the test that needed it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

from .world import (
    DC_ID,
    DC_IP,
    DC_PORT,
    Chat,
    Event,
    FakeChannel,
    FakeUser,
    RpcFault,
    request_name,
)

if TYPE_CHECKING:
    from .world import FakeTelegram, Link

# Requests a connection may make before it is signed in.
_ANONYMOUS = (
    functions.help.GetConfigRequest,
    functions.help.GetNearestDcRequest,
    functions.PingRequest,
    functions.auth.SendCodeRequest,
    functions.auth.SignInRequest,
    functions.auth.ImportBotAuthorizationRequest,
    functions.auth.LogOutRequest,
)
_HISTORY_LIMIT = 100  # messages.getHistory never returns more
_DIALOGS_LIMIT = 100

_HANDLERS: dict[type, Callable[..., Any]] = {}


def handles(*request_types: type):
    def register(method):
        for request_type in request_types:
            _HANDLERS[request_type] = method
        return method

    return register


def _ts(value: datetime | None) -> int:
    """Seconds since the epoch; a date sent as None arrives as the epoch itself (0)."""
    return int(value.timestamp()) if value is not None else 0


def _dialog_date(chat: Chat) -> tuple[int, int]:
    top = chat.history.newest()
    when = int(top.date.timestamp()) if top is not None else chat.date
    return when, top.id if top is not None else 0


class Api:
    """The handlers, bound to one world. `answer` is called with the world locked."""

    def __init__(self, world: FakeTelegram) -> None:
        self.w = world

    def answer(self, link: Link, request: TLObject) -> Any:
        handler = _HANDLERS.get(type(request))
        if handler is None:
            name = request_name(request)
            self.w.unsupported.append(name)
            raise RpcFault(400, f"FAKE_TELEGRAM_UNSUPPORTED {name}")
        state = self.w.key_state(link.key_id)
        if state != "user" and not isinstance(request, _ANONYMOUS):
            if not (state == "password" and isinstance(request, _PASSWORD_STEP)):
                # What Telegram answers an auth key that has not signed in (yet).
                raise RpcFault(401, "SESSION_PASSWORD_NEEDED" if state else "AUTH_KEY_UNREGISTERED")
        return handler(self, link, request)

    # -- resolving what requests name -----------------------------------------------------------

    def chat_of(self, request: TLObject) -> int | None:
        """The marked id of the chat a request is about (for the request log), if any."""
        for attr in ("peer", "channel"):
            value = getattr(request, attr, None)
            if isinstance(value, TLObject):
                try:
                    return self.peer(value).marked_id
                except RpcFault:
                    return None
        if isinstance(request, functions.messages.GetFullChatRequest):
            group = self.w.groups.get(request.chat_id)
            return group.marked_id if group else None
        return None

    def peer(self, p: TLObject) -> Chat:
        """An InputPeer / InputChannel / InputUser, checked like Telegram checks access hashes."""
        w = self.w
        if isinstance(p, types.InputPeerSelf | types.InputUserSelf):
            return w.me
        # Bots may pass access_hash 0 for users and channels they know (Telethon relies on it).
        zero_ok = w.me.bot and not getattr(p, "access_hash", None)
        if isinstance(p, types.InputPeerUser | types.InputUser):
            user = w.users.get(p.user_id)
            if user is None or (user.access_hash != p.access_hash and not zero_ok):
                raise RpcFault(
                    400, "USER_ID_INVALID" if isinstance(p, types.InputUser) else "PEER_ID_INVALID"
                )
            return user
        if isinstance(p, types.InputPeerChat):
            group = w.groups.get(p.chat_id)
            if group is None:
                raise RpcFault(400, "PEER_ID_INVALID")
            return group
        if isinstance(p, types.InputPeerChannel | types.InputChannel):
            channel = w.channels.get(p.channel_id)
            if channel is None or (channel.access_hash != p.access_hash and not zero_ok):
                raise RpcFault(400, "CHANNEL_INVALID")
            return channel
        if isinstance(p, types.InputPeerUserFromMessage | types.InputUserFromMessage):
            return w.users.get(p.user_id) or self._invalid("USER_ID_INVALID")
        if isinstance(p, types.InputPeerChannelFromMessage | types.InputChannelFromMessage):
            return w.channels.get(p.channel_id) or self._invalid("CHANNEL_INVALID")
        raise RpcFault(400, "PEER_ID_INVALID")

    @staticmethod
    def _invalid(message: str):
        raise RpcFault(400, message)

    def channel(self, p: TLObject) -> FakeChannel:
        chat = self.peer(p)
        if not isinstance(chat, FakeChannel):
            raise RpcFault(400, "CHANNEL_INVALID")
        return chat

    def readable(self, chat: Chat) -> Chat:
        """A channel the account left can only be read if it is public."""
        if isinstance(chat, FakeChannel) and not chat.joined and not chat.username:
            raise RpcFault(400, "CHANNEL_PRIVATE")
        return chat

    # -- connection and account -----------------------------------------------------------------

    @handles(functions.help.GetConfigRequest)
    def get_config(self, link, req):
        now = self.w.now()
        return types.Config(
            date=now,
            expires=datetime.fromtimestamp(now.timestamp() + 3600, tz=now.tzinfo),
            test_mode=False,
            this_dc=DC_ID,
            dc_options=[types.DcOption(id=DC_ID, ip_address=DC_IP, port=DC_PORT)],
            dc_txt_domain_name="apv3.stel.com",
            chat_size_max=200,
            megagroup_size_max=200000,
            forwarded_count_max=100,
            online_update_period_ms=210000,
            offline_blur_timeout_ms=5000,
            offline_idle_timeout_ms=30000,
            online_cloud_timeout_ms=300000,
            notify_cloud_delay_ms=30000,
            notify_default_delay_ms=1500,
            push_chat_period_ms=60000,
            push_chat_limit=2,
            edit_time_limit=172800,
            revoke_time_limit=2147483647,
            revoke_pm_time_limit=2147483647,
            rating_e_decay=2419200,
            stickers_recent_limit=200,
            channels_read_media_period=604800,
            call_receive_timeout_ms=20000,
            call_ring_timeout_ms=90000,
            call_connect_timeout_ms=30000,
            call_packet_timeout_ms=10000,
            me_url_prefix="https://t.me/",
            caption_length_max=1024,
            message_length_max=4096,
            webfile_dc_id=4,
        )

    @handles(functions.help.GetNearestDcRequest)
    def get_nearest_dc(self, link, req):
        return types.NearestDc(country="NL", this_dc=DC_ID, nearest_dc=DC_ID)

    @handles(functions.PingRequest)
    def ping(self, link, req):
        return types.Pong(msg_id=0, ping_id=req.ping_id)

    @handles(functions.users.GetUsersRequest)
    def get_users(self, link, req):
        out = []
        for input_user in req.id:
            try:
                out.append(self.peer(input_user).tl())
            except RpcFault:
                out.append(types.UserEmpty(id=getattr(input_user, "user_id", 0)))
        return out

    @handles(functions.users.GetFullUserRequest)
    def get_full_user(self, link, req):
        user = self.peer(req.id)
        if not isinstance(user, FakeUser):
            raise RpcFault(400, "USER_ID_INVALID")
        full = types.UserFull(
            id=user.id,
            settings=types.PeerSettings(),
            notify_settings=types.PeerNotifySettings(),
            common_chats_count=0,
        )
        return types.users.UserFull(full_user=full, chats=[], users=[user.tl()])

    @handles(functions.updates.GetStateRequest)
    def get_state(self, link, req):
        return self._state()

    def _state(self) -> types.updates.State:
        w = self.w
        return types.updates.State(pts=w.pts, qts=w.qts, date=w.now(), seq=w.seq, unread_count=0)

    # -- entities -------------------------------------------------------------------------------

    @handles(functions.contacts.ResolveUsernameRequest)
    def resolve_username(self, link, req):
        if not req.username or not req.username.replace("_", "").isalnum():
            raise RpcFault(400, "USERNAME_INVALID")
        found = self.w.find_username(req.username)
        if found is None:
            raise RpcFault(400, "USERNAME_NOT_OCCUPIED")
        users, chats = self.w._entities([found])
        return types.contacts.ResolvedPeer(peer=found.peer, chats=chats, users=users)

    @handles(functions.channels.GetChannelsRequest)
    def get_channels(self, link, req):
        return types.messages.Chats(chats=[self.channel(c).tl() for c in req.id])

    @handles(functions.messages.GetChatsRequest)
    def get_chats(self, link, req):
        chats = []
        for chat_id in req.id:
            group = self.w.groups.get(chat_id)
            if group is None:
                raise RpcFault(400, "CHAT_ID_INVALID")
            chats.append(group.tl())
        return types.messages.Chats(chats=chats)

    @handles(functions.channels.GetFullChannelRequest)
    def get_full_channel(self, link, req):
        ch = self.readable(self.channel(req.channel))
        full = types.ChannelFull(
            id=ch.id,
            about="",
            read_inbox_max_id=ch.read_inbox_max_id,
            read_outbox_max_id=0,
            unread_count=self._unread(ch),
            chat_photo=types.PhotoEmpty(id=0),
            notify_settings=types.PeerNotifySettings(),
            bot_info=[],
            pts=ch.pts,
            participants_count=len(ch.members),
        )
        return types.messages.ChatFull(full_chat=full, chats=[ch.tl()], users=[])

    @handles(functions.messages.GetFullChatRequest)
    def get_full_chat(self, link, req):
        group = self.w.groups.get(req.chat_id)
        if group is None:
            raise RpcFault(400, "CHAT_ID_INVALID")
        participants = types.ChatParticipants(
            chat_id=group.id,
            participants=[
                types.ChatParticipant(user_id=u.id, inviter_id=self.w.me.id, date=self.w.now())
                for u in group.members
            ],
            version=1,
        )
        full = types.ChatFull(
            id=group.id,
            about="",
            participants=participants,
            notify_settings=types.PeerNotifySettings(),
        )
        return types.messages.ChatFull(
            full_chat=full, chats=[group.tl()], users=[u.tl() for u in group.members]
        )

    # -- dialogs --------------------------------------------------------------------------------

    def _unread(self, chat: Chat) -> int:
        return sum(
            1
            for i in chat.history.ids
            if i > chat.read_inbox_max_id and not chat.history.by_id[i].out
        )

    def dialog(self, chat: Chat) -> types.Dialog:
        top = chat.history.newest()
        return types.Dialog(
            peer=chat.peer,
            top_message=top.id if top is not None else 0,
            read_inbox_max_id=chat.read_inbox_max_id,
            read_outbox_max_id=0,
            unread_count=self._unread(chat),
            unread_mentions_count=0,
            unread_reactions_count=0,
            unread_poll_votes_count=0,
            notify_settings=types.PeerNotifySettings(),
            pts=chat.pts if isinstance(chat, FakeChannel) else None,
        )

    @handles(functions.messages.GetDialogsRequest)
    def get_dialogs(self, link, req):
        if req.folder_id == 1:  # nothing is archived in this world
            return types.messages.Dialogs(dialogs=[], messages=[], chats=[], users=[])
        # Newest top message first, as Telegram lists them.
        ordered = sorted(self.w.dialog_chats(), key=_dialog_date, reverse=True)
        start = 0
        offset_peer = None
        if not isinstance(req.offset_peer, types.InputPeerEmpty):
            try:
                offset_peer = self.peer(req.offset_peer)
            except RpcFault:
                offset_peer = None
        if offset_peer is not None and offset_peer in ordered:
            start = ordered.index(offset_peer) + 1
        elif _ts(req.offset_date):
            cut = (_ts(req.offset_date), req.offset_id)
            start = next((i for i, c in enumerate(ordered) if _dialog_date(c) < cut), len(ordered))
        limit = max(0, min(req.limit or _DIALOGS_LIMIT, _DIALOGS_LIMIT))
        page = ordered[start : start + limit]
        tops = [c.history.newest() for c in page]
        tops = [m for m in tops if m is not None]
        users, chats = self.w._entities(page, tops)
        dialogs = [self.dialog(c) for c in page]
        if start == 0 and len(page) == len(ordered):
            return types.messages.Dialogs(dialogs=dialogs, messages=tops, chats=chats, users=users)
        return types.messages.DialogsSlice(
            count=len(ordered), dialogs=dialogs, messages=tops, chats=chats, users=users
        )

    # -- history --------------------------------------------------------------------------------

    def _position(self, chat: Chat, offset_id: int, offset_date: datetime | None) -> int:
        """Index (newest first) of the first message older than the offset."""
        ids = chat.history.ids
        if offset_id:
            # Messages with id >= offset_id come before the offset.
            return len(ids) - bisect.bisect_left(ids, offset_id)
        if _ts(offset_date):
            cut = _ts(offset_date)
            for position, msg_id in enumerate(reversed(ids)):
                if chat.history.by_id[msg_id].date.timestamp() < cut:
                    return position
            return len(ids)
        return 0

    def _messages_result(self, chat: Chat, msgs: list, *, complete: bool, count: int):
        users, chats = self.w._entities([chat], msgs)
        if isinstance(chat, FakeChannel):
            return types.messages.ChannelMessages(
                pts=chat.pts, count=count, messages=msgs, topics=[], chats=chats, users=users
            )
        if complete:
            return types.messages.Messages(messages=msgs, topics=[], chats=chats, users=users)
        return types.messages.MessagesSlice(
            count=count, messages=msgs, topics=[], chats=chats, users=users
        )

    @handles(functions.messages.GetHistoryRequest)
    def get_history(self, link, req):
        """offset_id (or else offset_date) picks a position in the newest-first list,
        add_offset shifts it (negative: towards newer), limit (at most 100) takes that many,
        then max_id/min_id filter what was taken: Telegram applies them to the window, which
        is why Telethon emulates them locally instead of sending them."""
        chat = self.readable(self.peer(req.peer))
        ids_desc = chat.history.ids[::-1]
        position = self._position(chat, req.offset_id, req.offset_date)
        limit = max(0, min(req.limit, _HISTORY_LIMIT))
        start = max(0, position + req.add_offset)
        end = max(0, position + req.add_offset + limit)
        window = [
            i
            for i in ids_desc[start:end]
            if (not req.max_id or i < req.max_id) and (not req.min_id or i > req.min_id)
        ]
        msgs = [chat.history.by_id[i] for i in window]
        complete = start == 0 and end >= len(ids_desc) and len(window) == len(ids_desc)
        return self._messages_result(chat, msgs, complete=complete, count=len(ids_desc))

    def _by_ids(self, chats: list[Chat], ids: list[TLObject], peer=None) -> list:
        out = []
        for input_message in ids:
            msg_id = getattr(input_message, "id", None)
            found = None
            if isinstance(input_message, types.InputMessageID):
                found = next((c.history.get(msg_id) for c in chats if c.history.get(msg_id)), None)
            if found is None:
                # (types.MessageEmpty is Telethon's patched class, whose peer_id is positional.)
                found = types.MessageEmpty(id=msg_id or 0, peer_id=peer)
            out.append(found)
        return out

    @handles(functions.channels.GetMessagesRequest)
    def get_channel_messages(self, link, req):
        ch = self.readable(self.channel(req.channel))
        msgs = self._by_ids([ch], req.id, ch.peer)
        return self._messages_result(ch, msgs, complete=True, count=len(msgs))

    @handles(functions.messages.GetMessagesRequest)
    def get_messages(self, link, req):
        # Private chats and basic groups share one id space, so ids alone find the message.
        chats = [u for u in self.w.users.values() if u.history] + list(self.w.groups.values())
        msgs = self._by_ids(chats, req.id)
        users, others = self.w._entities([], msgs)
        return types.messages.Messages(messages=msgs, topics=[], chats=others, users=users)

    @handles(functions.messages.GetMessagesViewsRequest)
    def get_messages_views(self, link, req):
        chat = self.readable(self.peer(req.peer))
        views = []
        for msg_id in req.id:
            msg = chat.history.get(msg_id)
            if isinstance(msg, types.Message):
                if req.increment and msg.views is not None:
                    msg.views += 1
                views.append(
                    types.MessageViews(views=msg.views, forwards=msg.forwards, replies=msg.replies)
                )
            else:
                views.append(types.MessageViews())
        users, chats = self.w._entities([chat])
        return types.messages.MessageViews(views=views, chats=chats, users=users)

    @handles(functions.messages.GetForumTopicsRequest)
    def get_forum_topics(self, link, req):
        ch = self.readable(self.peer(req.peer))
        if not isinstance(ch, FakeChannel) or not ch.forum:
            raise RpcFault(400, "CHANNEL_FORUM_MISSING")
        topics, tops = [], []
        for topic_id, title in sorted(ch.topics.items(), reverse=True):
            if req.offset_topic and topic_id >= req.offset_topic:
                continue
            in_topic = [
                m
                for m in ch.history.by_id.values()
                if m.id == topic_id
                or (
                    isinstance(m.reply_to, types.MessageReplyHeader)
                    and topic_id in (m.reply_to.reply_to_top_id, m.reply_to.reply_to_msg_id)
                    and m.reply_to.forum_topic
                )
            ]
            top = max(in_topic, key=lambda m: m.id)
            tops.append(top)
            creation = ch.history.get(topic_id)
            topics.append(
                types.ForumTopic(
                    id=topic_id,
                    date=creation.date if creation else self.w.now(),
                    peer=ch.peer,
                    title=title,
                    icon_color=0x6FB9F0,
                    top_message=top.id,
                    read_inbox_max_id=ch.read_inbox_max_id,
                    read_outbox_max_id=0,
                    unread_count=0,
                    unread_mentions_count=0,
                    unread_reactions_count=0,
                    unread_poll_votes_count=0,
                    from_id=(creation.from_id if creation else None) or self.w.me.peer,
                    notify_settings=types.PeerNotifySettings(),
                )
            )
        topics = topics[: req.limit or len(topics)]
        users, chats = self.w._entities([ch], tops)
        return types.messages.ForumTopics(
            count=len(ch.topics), topics=topics, messages=tops, chats=chats, users=users, pts=ch.pts
        )

    # -- differences ----------------------------------------------------------------------------

    def _difference_parts(self, events: list[Event], channel: FakeChannel | None):
        """Messages still present that were created in these events (their current version),
        and the edits/deletions of older messages as other_updates."""
        created = {(id(e.chat), i) for e in events if e.kind == "new" for i in e.ids}
        new_messages, other = [], []
        for e in events:
            if e.kind == "new":
                found = (e.chat.history.get(i) for i in e.ids)
                new_messages += [m for m in found if m is not None]
            elif e.kind == "edit":
                msg = e.chat.history.get(e.ids[0])
                if msg is None or (id(e.chat), msg.id) in created:
                    continue
                cls = types.UpdateEditChannelMessage if channel else types.UpdateEditMessage
                other.append(cls(message=msg, pts=e.pts, pts_count=e.pts_count))
            elif e.kind == "delete":
                if channel is not None:
                    other.append(
                        types.UpdateDeleteChannelMessages(
                            channel_id=channel.id, messages=e.ids, pts=e.pts, pts_count=e.pts_count
                        )
                    )
                else:
                    other.append(
                        types.UpdateDeleteMessages(messages=e.ids, pts=e.pts, pts_count=e.pts_count)
                    )
        chats = {id(e.chat): e.chat for e in events}.values()
        users, chat_objs = self.w._entities(
            chats, [*new_messages, *(u.message for u in other if hasattr(u, "message"))]
        )
        return new_messages, other, users, chat_objs

    @handles(functions.updates.GetDifferenceRequest)
    def get_difference(self, link, req):
        w = self.w
        if w.account_too_long > 0:
            w.account_too_long -= 1
            return types.updates.DifferenceTooLong(pts=w.pts)
        events = [e for e in w.account_events if e.pts > req.pts]
        if not events:
            return types.updates.DifferenceEmpty(date=w.now(), seq=w.seq)
        new_messages, other, users, chats = self._difference_parts(events, None)
        return types.updates.Difference(
            new_messages=new_messages,
            new_encrypted_messages=[],
            other_updates=other,
            chats=chats,
            users=users,
            state=self._state(),
        )

    @handles(functions.updates.GetChannelDifferenceRequest)
    def get_channel_difference(self, link, req):
        ch = self.readable(self.channel(req.channel))
        if req.pts <= 0:
            raise RpcFault(400, "PERSISTENT_TIMESTAMP_EMPTY")
        if req.pts > ch.pts:
            raise RpcFault(400, "PERSISTENT_TIMESTAMP_INVALID")
        if ch.too_long > 0:
            ch.too_long -= 1
            latest = [ch.history.by_id[i] for i in ch.history.ids[::-1][: min(req.limit, 20)]]
            users, chats = self.w._entities([ch], latest)
            return types.updates.ChannelDifferenceTooLong(
                dialog=self.dialog(ch), messages=latest, chats=chats, users=users, final=True
            )
        events = [e for e in ch.events if e.pts > req.pts]
        if not events:
            return types.updates.ChannelDifferenceEmpty(pts=ch.pts, final=True)
        # More events than asked for: hand out a slice, Telethon asks again from its end.
        final = len(events) <= req.limit
        events = events[: req.limit]
        new_messages, other, users, chats = self._difference_parts(events, ch)
        return types.updates.ChannelDifference(
            pts=events[-1].pts,
            new_messages=new_messages,
            other_updates=other,
            chats=chats,
            users=users,
            final=final or None,
        )

    # -- files ----------------------------------------------------------------------------------

    @handles(functions.upload.GetFileRequest)
    def get_file(self, link, req):
        loc = req.location
        if isinstance(loc, types.InputPhotoFileLocation):
            kind = "photo"
        elif isinstance(loc, types.InputDocumentFileLocation):
            kind = "document"
        else:
            raise RpcFault(400, "LOCATION_INVALID")
        stored = self.w.media.lookup(kind, loc.id)
        if stored is None or stored.obj.access_hash != loc.access_hash:
            raise RpcFault(400, "FILE_ID_INVALID" if stored is None else "LOCATION_INVALID")
        if loc.file_reference != stored.obj.file_reference:
            raise RpcFault(400, "FILE_REFERENCE_EXPIRED")
        data = stored.parts.get(loc.thumb_size)
        if data is None:
            raise RpcFault(400, "LOCATION_INVALID")
        # Telegram's chunk rules (https://core.telegram.org/api/files#downloading-files).
        if req.limit <= 0 or req.limit > 1024 * 1024 or req.limit % 1024:
            raise RpcFault(400, "LIMIT_INVALID")
        if req.offset < 0 or req.offset % 1024:
            raise RpcFault(400, "OFFSET_INVALID")
        if not req.precise:
            if req.limit % 4096 or (1024 * 1024) % req.limit:
                raise RpcFault(400, "LIMIT_INVALID")
            if req.offset % 4096:
                raise RpcFault(400, "OFFSET_INVALID")
        file_type = types.storage.FileJpeg() if kind == "photo" else types.storage.FileUnknown()
        return types.upload.File(
            type=file_type, mtime=0, bytes=data[req.offset : req.offset + req.limit]
        )

    # -- login ----------------------------------------------------------------------------------

    def _check_phone(self, phone: str) -> str:
        digits = "".join(c for c in phone if c.isdigit())
        if not digits or digits != "".join(c for c in self.w.me.phone or "" if c.isdigit()):
            raise RpcFault(400, "PHONE_NUMBER_INVALID")
        return digits

    def _signed_in(self, link) -> types.auth.Authorization:
        self.w.set_key_state(link.key_id, "user")
        return types.auth.Authorization(user=self.w.me.tl())

    @handles(functions.auth.SendCodeRequest)
    def send_code(self, link, req):
        if not req.api_id or not req.api_hash:
            raise RpcFault(400, "API_ID_INVALID")
        if self.w.me.bot:
            raise RpcFault(400, "PHONE_NUMBER_INVALID")
        phone = self._check_phone(req.phone_number)
        code_hash = f"{self.w._rng.getrandbits(64):016x}"
        self.w._sent_codes[phone] = code_hash
        return types.auth.SentCode(
            type=types.auth.SentCodeTypeApp(length=len(self.w.login_code)),
            phone_code_hash=code_hash,
        )

    @handles(functions.auth.SignInRequest)
    def sign_in(self, link, req):
        phone = self._check_phone(req.phone_number)
        if not req.phone_code_hash:
            raise RpcFault(400, "PHONE_CODE_HASH_EMPTY")
        if self.w._sent_codes.get(phone) != req.phone_code_hash:
            raise RpcFault(400, "PHONE_CODE_EXPIRED")
        if req.phone_code != self.w.login_code:
            raise RpcFault(400, "PHONE_CODE_INVALID")
        del self.w._sent_codes[phone]
        if self.w._srp is not None:
            self.w.set_key_state(link.key_id, "password")
            raise RpcFault(401, "SESSION_PASSWORD_NEEDED")
        return self._signed_in(link)

    @handles(functions.account.GetPasswordRequest)
    def get_password(self, link, req):
        srp = self.w._srp
        new_algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=self.w._rng.randbytes(32),
            salt2=self.w._rng.randbytes(16),
            g=3,
            p=srp.algo.p if srp else b"",
        )
        common = {
            "new_algo": new_algo if srp else types.PasswordKdfAlgoUnknown(),
            "new_secure_algo": types.SecurePasswordKdfAlgoUnknown(),
            "secure_random": self.w._rng.randbytes(32),
        }
        if srp is None:
            return types.account.Password(has_password=False, **common)
        srp_id, big_b = srp.challenge()
        return types.account.Password(
            has_password=True, current_algo=srp.algo, srp_B=big_b, srp_id=srp_id, **common
        )

    @handles(functions.auth.CheckPasswordRequest)
    def check_password(self, link, req):
        srp = self.w._srp
        check = req.password
        if srp is None or not isinstance(check, types.InputCheckPasswordSRP):
            raise RpcFault(400, "PASSWORD_HASH_INVALID")
        verdict = srp.verify(check.srp_id, check.A, check.M1)
        if verdict is None:
            raise RpcFault(400, "SRP_ID_INVALID")
        if not verdict:
            raise RpcFault(400, "PASSWORD_HASH_INVALID")
        return self._signed_in(link)

    @handles(functions.auth.ImportBotAuthorizationRequest)
    def import_bot_authorization(self, link, req):
        w = self.w
        if not w.me.bot or not w.bot_token or req.bot_auth_token != w.bot_token:
            raise RpcFault(400, "ACCESS_TOKEN_INVALID")
        return self._signed_in(link)

    @handles(functions.auth.LogOutRequest)
    def log_out(self, link, req):
        self.w.set_key_state(link.key_id, None)
        return types.auth.LoggedOut()


# Requests allowed between SESSION_PASSWORD_NEEDED and a successful password check.
_PASSWORD_STEP = (functions.account.GetPasswordRequest, functions.auth.CheckPasswordRequest)
