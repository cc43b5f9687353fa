DROP FUNCTION hardware.place_mandelbox(text, text[], text[], boolean, bigint, text, bigint);
