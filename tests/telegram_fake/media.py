"""Media for the scripted Telegram: real `MessageMedia*` objects and the bytes behind them.

Photos and documents are registered in a `FileStore` that `upload.getFile` serves from, so a
test can check that what Telethon downloads is byte for byte what the server holds. Each file
has one current file reference; `expire` replaces it, and because the stored messages hold the
very `Photo`/`Document` objects of the store, every later fetch of a message carries the new
reference while copies a client already holds keep the old, now refused, one (as on Telegram).
"""

from __future__ import annotations

import functools
import hashlib
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime

from telethon.tl import types


def sample_bytes(seed: str, size: int, magic: bytes = b"") -> bytes:
    """Deterministic filler bytes; distinct per seed so a wrong file cannot pass for another."""
    out = bytearray(magic)
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


@dataclass(eq=False)
class StoredFile:
    """One photo or document as the server keeps it: its TL object and the bytes per size."""

    obj: types.Photo | types.Document
    # thumb_size type ('' = the document itself) -> bytes served by upload.getFile.
    parts: dict[str, bytes] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "photo" if isinstance(self.obj, types.Photo) else "document"


class FileStore:
    """Builds media objects and keeps the bytes `upload.getFile` serves for them."""

    def __init__(self, dc_id: int, rng: random.Random, clock, lock: threading.RLock) -> None:
        self.dc_id = dc_id
        self._lock = lock  # the world's: builders may run while a server thread answers
        self._rng = rng
        self._clock = clock  # () -> datetime, the world's current time
        self._next_id = 5_000_000_000_000_000_000
        self.files: dict[tuple[str, int], StoredFile] = {}

    # -- bookkeeping --------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _reference(self) -> bytes:
        return self._rng.randbytes(20)

    @_locked
    def lookup(self, kind: str, file_id: int) -> StoredFile | None:
        return self.files.get((kind, file_id))

    @_locked
    def expire(self, obj: types.Photo | types.Document) -> bytes:
        """Give the file a new reference; the old one now fails with FILE_REFERENCE_EXPIRED."""
        obj.file_reference = self._reference()
        return obj.file_reference

    # -- photos ---------------------------------------------------------------------------------

    @_locked
    def photo(
        self, data: bytes | None = None, *, w: int = 1280, h: int = 960, spoiler: bool = False
    ) -> types.MessageMediaPhoto:
        """A photo whose largest size ('x') serves `data`; a small 'm' size and a stripped
        preview come with it, like the sizes Telegram lists for a real upload."""
        photo_id = self._new_id()
        data = data if data is not None else sample_bytes(f"photo{photo_id}", 6000, b"\xff\xd8\xff")
        thumb = sample_bytes(f"thumb{photo_id}", 700, b"\xff\xd8\xff")
        photo = types.Photo(
            id=photo_id,
            access_hash=self._rng.randrange(1, 2**62),
            file_reference=self._reference(),
            date=self._clock(),
            sizes=[
                types.PhotoStrippedSize(type="i", bytes=b"\x01\x28\x1e" + bytes(40)),
                types.PhotoSize(type="m", w=max(1, w // 4), h=max(1, h // 4), size=len(thumb)),
                types.PhotoSize(type="x", w=w, h=h, size=len(data)),
            ],
            dc_id=self.dc_id,
        )
        self.files[("photo", photo_id)] = StoredFile(photo, {"m": thumb, "x": data})
        return types.MessageMediaPhoto(photo=photo, spoiler=spoiler or None)

    # -- documents ------------------------------------------------------------------------------

    @_locked
    def document(
        self,
        data: bytes | None,
        mime_type: str,
        attributes: list,
        *,
        voice: bool = False,
        round: bool = False,
        video: bool = False,
        spoiler: bool = False,
        date: datetime | None = None,
    ) -> types.MessageMediaDocument:
        """Any document: `data` (default: filler) served as the file itself."""
        doc_id = self._new_id()
        data = data if data is not None else sample_bytes(f"doc{doc_id}", 9000)
        doc = types.Document(
            id=doc_id,
            access_hash=self._rng.randrange(1, 2**62),
            file_reference=self._reference(),
            date=date or self._clock(),
            mime_type=mime_type,
            size=len(data),
            dc_id=self.dc_id,
            attributes=attributes,
        )
        self.files[("document", doc_id)] = StoredFile(doc, {"": data})
        return types.MessageMediaDocument(
            document=doc,
            voice=voice or None,
            round=round or None,
            video=video or None,
            spoiler=spoiler or None,
        )

    @_locked
    def file(
        self,
        data: bytes | None = None,
        file_name: str = "report.pdf",
        mime_type: str = "application/pdf",
    ) -> types.MessageMediaDocument:
        return self.document(data, mime_type, [types.DocumentAttributeFilename(file_name)])

    @_locked
    def sticker(
        self, data: bytes | None = None, emoji: str = "👍", *, w: int = 512, h: int = 512
    ) -> types.MessageMediaDocument:
        return self.document(
            data,
            "image/webp",
            [
                types.DocumentAttributeImageSize(w=w, h=h),
                types.DocumentAttributeSticker(alt=emoji, stickerset=types.InputStickerSetEmpty()),
                types.DocumentAttributeFilename("sticker.webp"),
            ],
        )

    @_locked
    def voice(self, data: bytes | None = None, duration: int = 3) -> types.MessageMediaDocument:
        return self.document(
            data,
            "audio/ogg",
            [types.DocumentAttributeAudio(duration=duration, voice=True, waveform=bytes(63))],
            voice=True,
        )

    @_locked
    def video_note(
        self, data: bytes | None = None, duration: float = 5, length: int = 384
    ) -> types.MessageMediaDocument:
        return self.document(
            data,
            "video/mp4",
            [
                types.DocumentAttributeVideo(
                    duration=duration, w=length, h=length, round_message=True
                )
            ],
            round=True,
        )

    @_locked
    def animation(
        self, data: bytes | None = None, *, w: int = 320, h: int = 240, duration: float = 2
    ) -> types.MessageMediaDocument:
        return self.document(
            data,
            "video/mp4",
            [
                types.DocumentAttributeVideo(duration=duration, w=w, h=h, nosound=True),
                types.DocumentAttributeAnimated(),
                types.DocumentAttributeFilename("animation.gif.mp4"),
            ],
        )

    @_locked
    def video(
        self,
        data: bytes | None = None,
        *,
        duration: float = 12,
        w: int = 1280,
        h: int = 720,
        file_name: str = "video.mp4",
    ) -> types.MessageMediaDocument:
        return self.document(
            data,
            "video/mp4",
            [
                types.DocumentAttributeVideo(duration=duration, w=w, h=h, supports_streaming=True),
                types.DocumentAttributeFilename(file_name),
            ],
            video=True,
        )

    @_locked
    def audio(
        self,
        data: bytes | None = None,
        *,
        duration: int = 180,
        title: str | None = "Song",
        performer: str | None = "Artist",
        file_name: str = "song.mp3",
    ) -> types.MessageMediaDocument:
        return self.document(
            data,
            "audio/mpeg",
            [
                types.DocumentAttributeAudio(duration=duration, title=title, performer=performer),
                types.DocumentAttributeFilename(file_name),
            ],
        )

    # -- media without files --------------------------------------------------------------------

    @staticmethod
    def contact(
        phone: str, first_name: str, last_name: str = "", *, user_id: int = 0, vcard: str = ""
    ) -> types.MessageMediaContact:
        return types.MessageMediaContact(
            phone_number=phone,
            first_name=first_name,
            last_name=last_name,
            vcard=vcard,
            user_id=user_id,
        )

    @_locked
    def geo(self, lat: float, long: float) -> types.MessageMediaGeo:
        return types.MessageMediaGeo(
            geo=types.GeoPoint(long=long, lat=lat, access_hash=self._rng.randrange(1, 2**62))
        )

    @_locked
    def venue(
        self,
        lat: float,
        long: float,
        title: str,
        address: str,
        *,
        provider: str = "foursquare",
        venue_id: str = "4b1f0c6ef964a520a51b24e3",
        venue_type: str = "",
    ) -> types.MessageMediaVenue:
        return types.MessageMediaVenue(
            geo=types.GeoPoint(long=long, lat=lat, access_hash=self._rng.randrange(1, 2**62)),
            title=title,
            address=address,
            provider=provider,
            venue_id=venue_id,
            venue_type=venue_type,
        )

    @_locked
    def poll(
        self,
        question: str,
        answers: list[str],
        *,
        votes: list[int] | None = None,
        quiz: bool = False,
        correct: int | None = None,
        closed: bool = False,
        multiple_choice: bool = False,
    ) -> types.MessageMediaPoll:
        """A poll; `votes` (one count per answer) fills the results."""
        options = [bytes([i]) for i in range(len(answers))]
        poll = types.Poll(
            id=self._new_id(),
            question=types.TextWithEntities(question, []),
            answers=[
                types.PollAnswer(text=types.TextWithEntities(a, []), option=o)
                for a, o in zip(answers, options, strict=True)
            ],
            hash=0,
            closed=closed or None,
            quiz=quiz or None,
            multiple_choice=multiple_choice or None,
        )
        results = types.PollResults()
        if votes is not None:
            results = types.PollResults(
                results=[
                    # voters and recent_voters share one flag on the wire.
                    types.PollAnswerVoters(
                        option=o,
                        voters=v,
                        recent_voters=[],
                        correct=(True if i == correct else None),
                    )
                    for i, (o, v) in enumerate(zip(options, votes, strict=True))
                ],
                total_voters=sum(votes),
            )
        return types.MessageMediaPoll(poll=poll, results=results)
